// Package rabbitmq is the RabbitMQ adapter of Switchboard (placeholder; see below).
package rabbitmq
