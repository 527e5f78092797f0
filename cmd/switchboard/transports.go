package main

// The adapters compiled into the CLI: importing an adapter registers its
// URL scheme. mem:// (package inmem) is always registered by package
// messaging. Add each adapter here as it lands:
//
//	_ "github.com/switchboard-go/switchboard/kafka"    // kafka://
//	_ "github.com/switchboard-go/switchboard/rabbitmq" // amqp://
//	_ "github.com/switchboard-go/switchboard/sqs"      // sqs://
