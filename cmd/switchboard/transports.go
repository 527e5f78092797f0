package main

// The adapters compiled into the CLI: importing an adapter registers its
// URL schemes. mem:// (package inmem) is always registered by package
// messaging.
import (
	_ "github.com/switchboard-go/switchboard/kafka"    // kafka://
	_ "github.com/switchboard-go/switchboard/rabbitmq" // amqp://, amqps://
	_ "github.com/switchboard-go/switchboard/sqs"      // sqs://
)
