// Package cetest lets tests read and write broker messages with the
// official CloudEvents Go SDK (github.com/cloudevents/sdk-go/v2), to prove
// that Switchboard's wire mappings are CloudEvents binary mode.
//
// The SDK's own protocol bindings cannot be used here: its Kafka binding
// (protocol/kafka_sarama) drags in the Sarama client and its dependencies,
// its AMQP binding (protocol/amqp) speaks AMQP 1.0, not RabbitMQ's 0-9-1,
// and there is no SQS binding. Binary is a message adapter of a few lines
// over the SDK's binding and binding/spec packages, doing what those
// bindings do: the SDK's spec.WithPrefix(prefix) names and parses the
// attributes, binding.ToEvent builds the event and event.Validate checks
// it. For SQS, whose attributes are named like the HTTP binding's ce-
// headers, tests use the SDK's HTTP binding itself (HTTPHeader).
package cetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Binary is a message in CloudEvents binary content mode: attributes as
// headers named Prefix + attribute, datacontenttype as ContentType (a
// native property) or a "content-type" header (any case), data as Body.
type Binary struct {
	Prefix      string // "ce_" (Kafka), "cloudEvents_" or "cloudEvents:" (AMQP)
	Headers     map[string]string
	ContentType string
	Body        []byte
}

var (
	_ binding.Message               = (*Binary)(nil)
	_ binding.MessageMetadataReader = (*Binary)(nil)
)

func (m *Binary) version() spec.Version {
	vs := spec.WithPrefix(m.Prefix)
	for k, v := range m.Headers {
		if strings.EqualFold(k, vs.PrefixedSpecVersionName()) {
			return vs.Version(v)
		}
	}
	return nil
}

// ReadEncoding implements binding.MessageReader.
func (m *Binary) ReadEncoding() binding.Encoding {
	if m.version() != nil {
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

// ReadStructured implements binding.MessageReader.
func (m *Binary) ReadStructured(context.Context, binding.StructuredWriter) error {
	return binding.ErrNotStructured
}

// ReadBinary implements binding.MessageReader.
func (m *Binary) ReadBinary(ctx context.Context, w binding.BinaryWriter) error {
	v := m.version()
	if v == nil {
		return binding.ErrNotBinary
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	ct := m.ContentType
	for k, val := range m.Headers {
		if strings.EqualFold(k, "content-type") {
			if ct == "" {
				ct = val
			}
			continue
		}
		if !strings.HasPrefix(strings.ToLower(k), strings.ToLower(m.Prefix)) {
			continue
		}
		var err error
		if a := v.Attribute(k); a != nil {
			err = w.SetAttribute(a, val)
		} else {
			err = w.SetExtension(strings.ToLower(k[len(m.Prefix):]), val)
		}
		if err != nil {
			return err
		}
	}
	if ct != "" {
		if err := w.SetAttribute(v.AttributeFromKind(spec.DataContentType), ct); err != nil {
			return err
		}
	}
	if len(m.Body) > 0 {
		if err := w.SetData(bytes.NewReader(m.Body)); err != nil {
			return err
		}
	}
	return w.End(ctx)
}

// GetAttribute implements binding.MessageMetadataReader.
func (m *Binary) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	v := m.version()
	if v == nil {
		return nil, nil
	}
	a := v.AttributeFromKind(k)
	if a == nil {
		return nil, nil
	}
	if k == spec.DataContentType && m.ContentType != "" {
		return a, m.ContentType
	}
	if val, ok := m.header(a.PrefixedName()); ok {
		return a, val
	}
	if k == spec.DataContentType {
		if val, ok := m.header("content-type"); ok {
			return a, val
		}
	}
	return a, nil
}

// GetExtension implements binding.MessageMetadataReader.
func (m *Binary) GetExtension(name string) any {
	if val, ok := m.header(m.Prefix + name); ok {
		return val
	}
	return nil
}

func (m *Binary) header(name string) (string, bool) {
	for k, v := range m.Headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Finish implements binding.Message.
func (m *Binary) Finish(error) error { return nil }

// ToEvent decodes r with the SDK and validates the event.
func ToEvent(ctx context.Context, r binding.MessageReader) (*event.Event, error) {
	e, err := binding.ToEvent(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}

// HTTPHeader returns an SDK HTTP-binding message of attributes named like
// HTTP headers (ce-id, content-type, …) and body.
func HTTPHeader(attrs map[string]string, body []byte) binding.Message {
	h := http.Header{}
	for k, v := range attrs {
		h.Set(k, v)
	}
	return cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
}

// binaryWriter collects what the SDK writes in binary mode.
type binaryWriter struct {
	prefix string
	out    *Binary
}

func (b *binaryWriter) Start(context.Context) error { return nil }
func (b *binaryWriter) End(context.Context) error   { return nil }
func (b *binaryWriter) SetData(r io.Reader) error {
	var err error
	b.out.Body, err = io.ReadAll(r)
	return err
}
func (b *binaryWriter) SetAttribute(a spec.Attribute, value any) error {
	s, err := types.Format(value)
	if err != nil {
		return err
	}
	if a.Kind() == spec.DataContentType {
		b.out.ContentType = s
		return nil
	}
	b.out.Headers[b.prefix+a.Name()] = s
	return nil
}
func (b *binaryWriter) SetExtension(name string, value any) error {
	s, err := types.Format(value)
	if err != nil {
		return err
	}
	b.out.Headers[b.prefix+name] = s
	return nil
}

// FromEvent writes e with the SDK in binary mode under prefix: the
// attributes as headers, datacontenttype as ContentType, data as Body.
func FromEvent(ctx context.Context, e event.Event, prefix string) (*Binary, error) {
	out := &Binary{Prefix: prefix, Headers: map[string]string{}}
	enc, err := binding.Write(ctx, binding.ToMessage(&e), nil, &binaryWriter{prefix: prefix, out: out})
	if err != nil {
		return nil, err
	}
	if enc != binding.EncodingBinary {
		return nil, errors.New("cetest: the SDK did not write binary mode")
	}
	return out, nil
}

// FromEventHTTP writes e with the SDK's HTTP binding (binary mode) and
// returns its headers, lower-cased (ce-id, content-type, …), and body.
func FromEventHTTP(ctx context.Context, e event.Event) (map[string]string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost/", nil)
	if err != nil {
		return nil, nil, err
	}
	ctx = binding.WithForceBinary(ctx)
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&e), req); err != nil {
		return nil, nil, err
	}
	h := map[string]string{}
	for k := range req.Header {
		h[strings.ToLower(k)] = req.Header.Get(k)
	}
	var body []byte
	if req.Body != nil {
		body, err = io.ReadAll(req.Body)
		if err != nil {
			return nil, nil, err
		}
	}
	return h, body, nil
}
