package main

// The adapters, registered for SWITCHBOARD_URL: mem:// is always there.
import (
	_ "github.com/switchboard-go/switchboard/kafka"    // kafka://
	_ "github.com/switchboard-go/switchboard/rabbitmq" // amqp://, amqps://
	_ "github.com/switchboard-go/switchboard/sqs"      // sqs://
)
