// Package kafka is the Switchboard transport for Apache Kafka.
package kafka
