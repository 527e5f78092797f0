package main

// The adapters, registered for SWITCHBOARD_URL: mem:// is always there.
import (
	_ "github.com/switchboard-go/switchboard/rabbitmq" // amqp://, amqps://
)
