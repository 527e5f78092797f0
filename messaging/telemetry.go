package messaging

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/transport"
)

// instrumentation names the tracer and meter of this package.
const instrumentation = "github.com/switchboard-go/switchboard/messaging"

// WithTracerProvider turns tracing on: spans for publish, process, request
// and gather following OpenTelemetry's messaging conventions, with the
// trace context carried in message headers (W3C traceparent by default)
// so that a trace started by a publisher continues in its consumers on
// every transport. Tracing is off by default and then costs nothing.
func WithTracerProvider(tp trace.TracerProvider) ClientOption {
	return func(o *clientOptions) { o.tracerProvider = tp }
}

// WithMeterProvider turns metrics on: messages published, delivered,
// acknowledged, retried and dead-lettered, messages in flight, and handler
// duration. Metrics are off by default.
func WithMeterProvider(mp metric.MeterProvider) ClientOption {
	return func(o *clientOptions) { o.meterProvider = mp }
}

// WithPropagator sets how trace context travels in headers. The default,
// once tracing is on, is W3C Trace Context and Baggage.
func WithPropagator(p propagation.TextMapPropagator) ClientOption {
	return func(o *clientOptions) { o.propagator = p }
}

// telemetry holds the client's instruments; its zero value is off.
type telemetry struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	system attribute.KeyValue

	meter        bool
	published    metric.Int64Counter
	delivered    metric.Int64Counter
	acked        metric.Int64Counter
	retried      metric.Int64Counter
	deadLettered metric.Int64Counter
	// deadLetterFailed counts messages acknowledged without a dead letter
	// because the dead letter could never be sent.
	deadLetterFailed metric.Int64Counter
	inFlight         metric.Int64UpDownCounter
	duration         metric.Float64Histogram
}

// messagingSystem maps an adapter name to OpenTelemetry's
// messaging.system value.
func messagingSystem(name string) string {
	switch name {
	case "sqs":
		return "aws_sqs"
	case "inmem":
		return "switchboard_inmem"
	}
	return name
}

func newTelemetry(o *clientOptions, caps transport.Capabilities) (telemetry, error) {
	t := telemetry{system: attribute.String("messaging.system", messagingSystem(caps.Name))}
	if o.tracerProvider != nil {
		t.tracer = o.tracerProvider.Tracer(instrumentation)
		t.prop = o.propagator
		if t.prop == nil {
			t.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		}
	}
	if o.meterProvider == nil {
		return t, nil
	}
	m := o.meterProvider.Meter(instrumentation)
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{message}"))
		return c
	}
	t.published = counter("messaging.client.sent.messages", "Messages sent to the broker: published, notified, requests, replies and dead letters.")
	t.delivered = counter("messaging.client.consumed.messages", "Messages received from the broker by subscriptions.")
	t.acked = counter("switchboard.messages.acked", "Messages acknowledged after their handler succeeded, or after they were dead-lettered.")
	t.retried = counter("switchboard.messages.retried", "Handler failures followed by a retry.")
	t.deadLettered = counter("switchboard.messages.dead_lettered", "Messages sent to a dead-letter queue.")
	t.deadLetterFailed = counter("switchboard.messages.dead_letter_failed",
		"Messages acknowledged without a dead letter because the dead letter could never be sent (too large even when shrunk, or refused as invalid).")
	if err != nil {
		return t, err
	}
	if t.inFlight, err = m.Int64UpDownCounter("switchboard.messages.in_flight", metric.WithUnit("{message}"),
		metric.WithDescription("Messages received and not yet acknowledged or released.")); err != nil {
		return t, err
	}
	if t.duration, err = m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of handler calls.")); err != nil {
		return t, err
	}
	t.meter = true
	return t, nil
}

// headerCarrier adapts message headers to a propagation.TextMapCarrier.
type headerCarrier map[string]string

func (h headerCarrier) Get(k string) string { return h[k] }
func (h headerCarrier) Set(k, v string)     { h[k] = v }
func (h headerCarrier) Keys() []string {
	ks := make([]string, 0, len(h))
	for k := range h {
		ks = append(ks, k)
	}
	return ks
}

// startSend starts a producer span for a send and injects its context into
// the messages' headers (copying each header map: they may be the
// caller's). With tracing off it does nothing.
func (t *telemetry) startSend(ctx context.Context, op string, to transport.Address, msgs []*transport.Message) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{
		t.system,
		attribute.String("messaging.destination.name", to.Name),
		attribute.String("messaging.operation.type", sendOperationType(op)),
		attribute.String("messaging.operation.name", op),
	}
	if len(msgs) == 1 {
		attrs = append(attrs, attribute.String("messaging.message.id", msgs[0].ID))
		if msgs[0].CorrelationID != "" {
			attrs = append(attrs, attribute.String("messaging.message.conversation_id", msgs[0].CorrelationID))
		}
	} else {
		attrs = append(attrs, attribute.Int("messaging.batch.message_count", len(msgs)))
	}
	ctx, span := t.tracer.Start(ctx, op+" "+to.Name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	t.inject(ctx, msgs)
	return ctx, span
}

func sendOperationType(op string) string {
	if op == "publish" {
		return "publish"
	}
	return "send"
}

// inject writes ctx's trace context into copies of the messages' headers.
func (t *telemetry) inject(ctx context.Context, msgs []*transport.Message) {
	if t.prop == nil {
		return
	}
	for _, m := range msgs {
		h := make(headerCarrier, len(m.Headers)+2)
		for k, v := range m.Headers {
			h[k] = v
		}
		t.prop.Inject(ctx, h)
		m.Headers = h
	}
}

// endSpan records err on span, if any, and ends it.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// startProcess starts a consumer span for one handler call, continuing the
// trace carried by the message's headers.
func (t *telemetry) startProcess(ctx context.Context, s *Subscription, tm *transport.Message, attempt int) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, nil
	}
	ctx = t.prop.Extract(ctx, headerCarrier(tm.Headers))
	attrs := []attribute.KeyValue{
		t.system,
		attribute.String("messaging.destination.name", s.source),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.message.id", tm.ID),
		attribute.Int("messaging.switchboard.attempt", attempt),
	}
	if s.group != "" {
		attrs = append(attrs, attribute.String("messaging.consumer.group.name", s.group))
	}
	if tm.CorrelationID != "" {
		attrs = append(attrs, attribute.String("messaging.message.conversation_id", tm.CorrelationID))
	}
	if tm.Key != "" {
		attrs = append(attrs, attribute.String("messaging.switchboard.key", tm.Key))
	}
	return t.tracer.Start(ctx, "process "+s.source, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// startClient starts the span of a request or gather, which lasts until
// the reply (or the last reply) arrives.
func (t *telemetry) startClient(ctx context.Context, op, dest string) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, nil
	}
	return t.tracer.Start(ctx, op+" "+dest, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		t.system,
		attribute.String("messaging.destination.name", dest),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.operation.name", op),
	))
}

// subMetrics are a subscription's metric options, computed once.
type subMetrics struct {
	set metric.MeasurementOption
}

func (t *telemetry) forSubscription(source, group string) subMetrics {
	if !t.meter {
		return subMetrics{}
	}
	return subMetrics{set: metric.WithAttributeSet(attribute.NewSet(t.system,
		attribute.String("messaging.destination.name", source),
		attribute.String("messaging.consumer.group.name", group)))}
}

func (t *telemetry) count(c metric.Int64Counter, sm subMetrics, n int64) {
	if t.meter {
		c.Add(context.Background(), n, sm.set)
	}
}

func (t *telemetry) flight(sm subMetrics, n int64) {
	if t.meter {
		t.inFlight.Add(context.Background(), n, sm.set)
	}
}

func (t *telemetry) handlerDuration(sm subMetrics, d time.Duration, err error) {
	if t.meter {
		outcome := attribute.String("messaging.switchboard.outcome", "success")
		if err != nil {
			outcome = attribute.String("messaging.switchboard.outcome", "failure")
		}
		t.duration.Record(context.Background(), d.Seconds(), sm.set, metric.WithAttributes(outcome))
	}
}

func (t *telemetry) sent(to transport.Address, n int) {
	if t.meter {
		t.published.Add(context.Background(), int64(n), metric.WithAttributes(t.system,
			attribute.String("messaging.destination.name", to.Name),
			attribute.String("messaging.switchboard.kind", to.Kind.String())))
	}
}
