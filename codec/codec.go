// Package codec encodes typed values into Switchboard messages and
// decodes them back, by content type and by message type and version: a
// Codec per content type (JSON, Protobuf), Encode to make a message, and a
// Router whose Handler (a messaging.Handler) upgrades old versions and
// hands each message type, decoded, to its typed handler (Route). Type,
// version and content type travel with every message on every transport
// (CloudEvents type, dataversion and datacontenttype; SEMANTICS.md R48).
//
//	r := codec.NewRouter(codec.JSON, codec.Protobuf)
//	r.Upgrade("order.created", "1", "2", upgradeV1)
//	codec.Route(r, "order.created", "2", func(ctx context.Context, m *messaging.Message, o OrderV2) error { ... })
//	sub, err := client.Subscribe(ctx, "orders", "billing", r.Handler())
package codec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"reflect"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-go/switchboard/messaging"
)

// Codec encodes and decodes message bodies of one content type.
type Codec interface {
	// ContentType is the MIME type the codec reads and writes, such as
	// "application/json".
	ContentType() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer.
	Unmarshal(data []byte, v any) error
}

// JSON is the codec for "application/json", with encoding/json.
var JSON Codec = jsonCodec{}

// Protobuf is the codec for "application/protobuf", with
// google.golang.org/protobuf; values must be proto.Message.
var Protobuf Codec = protoCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string             { return "application/json" }
func (jsonCodec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (jsonCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type protoCodec struct{}

func (protoCodec) ContentType() string { return "application/protobuf" }

func (protoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%w: protobuf codec: %T is not a proto.Message", messaging.ErrInvalid, v)
	}
	return proto.Marshal(m)
}

func (protoCodec) Unmarshal(b []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("%w: protobuf codec: %T is not a proto.Message", messaging.ErrInvalid, v)
	}
	return proto.Unmarshal(b, m)
}

// Errors of typed message handling. Messages failing with them are
// dead-lettered at once (they are messaging.Permanent), with the error
// as the reason in the failure envelope.
var (
	// ErrUnknownType: no route handles the message's Type, or no upgrade
	// leads from its Version to the route's.
	ErrUnknownType = errors.New("switchboard: unknown message type or version")
	// ErrUndecodable: the body cannot be decoded, or its content type has
	// no codec.
	ErrUndecodable = errors.New("switchboard: undecodable message body")
)

// Encode returns a message whose body is v encoded with c, with c's
// content type and the given type and version.
func Encode(c Codec, typ, version string, v any) (*messaging.Message, error) {
	body, err := c.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %s v%s: %w", messaging.ErrInvalid, typ, version, err)
	}
	return &messaging.Message{Body: body, ContentType: c.ContentType(), Type: typ, Version: version}, nil
}

// Router dispatches messages by Type to typed handlers: it upgrades old
// versions to the version the handler expects, picks the codec by content
// type and decodes the body. Register routes with Route and upgrades with
// Upgrade before calling Handler; a Router is then safe for concurrent use.
type Router struct {
	codecs   map[string]Codec
	fallback Codec
	routes   map[string]*route
}

type route struct {
	version  string
	handle   func(ctx context.Context, m *messaging.Message, c Codec) error
	upgrades map[string]upgrade // from version
}

type upgrade struct {
	to string
	fn func(m *messaging.Message) error
}

// NewRouter returns a Router that decodes with the given codecs (JSON
// when none is given). The first codec also decodes messages that carry no
// content type.
func NewRouter(codecs ...Codec) *Router {
	if len(codecs) == 0 {
		codecs = []Codec{JSON}
	}
	r := &Router{codecs: map[string]Codec{}, fallback: codecs[0], routes: map[string]*route{}}
	for _, c := range codecs {
		r.codecs[c.ContentType()] = c
	}
	return r
}

// Route makes r hand messages of type typ, once at version, decoded into a
// T, to h.
func Route[T any](r *Router, typ, version string, h func(ctx context.Context, m *messaging.Message, v T) error) {
	rt := r.route(typ)
	rt.version = version
	ptr := reflect.TypeFor[T]().Kind() == reflect.Pointer
	rt.handle = func(ctx context.Context, m *messaging.Message, c Codec) error {
		var v T
		target := any(&v)
		if ptr { // *Order, or a proto.Message: decode into a new value
			v = reflect.New(reflect.TypeFor[T]().Elem()).Interface().(T)
			target = v
		}
		if err := c.Unmarshal(m.Body, target); err != nil {
			return fmt.Errorf("%w: %s v%s as %s: %w", ErrUndecodable, typ, version, c.ContentType(), err)
		}
		return h(ctx, m, v)
	}
}

// Upgrade registers fn to turn a message of type typ from version from to
// version to (fn rewrites m.Body; the router sets m.Version). Upgrades
// chain: v1 → v2 → v3.
func (r *Router) Upgrade(typ, from, to string, fn func(m *messaging.Message) error) {
	r.route(typ).upgrades[from] = upgrade{to: to, fn: fn}
}

func (r *Router) route(typ string) *route {
	rt := r.routes[typ]
	if rt == nil {
		rt = &route{upgrades: map[string]upgrade{}}
		r.routes[typ] = rt
	}
	return rt
}

// Handler returns the Handler that routes messages. A message of unknown
// type or version fails with ErrUnknownType, an undecodable one with
// ErrUndecodable, both permanent: dead-lettered at once, never retried,
// never a panic.
func (r *Router) Handler() messaging.Handler {
	return func(ctx context.Context, m *messaging.Message) error {
		rt := r.routes[m.Type]
		if rt == nil || rt.handle == nil {
			return messaging.Permanent(fmt.Errorf("%w: no route for type %q", ErrUnknownType, m.Type))
		}
		for steps := 0; m.Version != rt.version; steps++ {
			up, ok := rt.upgrades[m.Version]
			if !ok || steps > len(rt.upgrades) {
				return messaging.Permanent(fmt.Errorf("%w: type %q has no upgrade from version %q to %q", ErrUnknownType, m.Type, m.Version, rt.version))
			}
			if err := up.fn(m); err != nil {
				return messaging.Permanent(fmt.Errorf("%w: upgrade %s from v%s to v%s: %w", ErrUndecodable, m.Type, m.Version, up.to, err))
			}
			m.Version = up.to
		}
		c := r.fallback
		if m.ContentType != "" {
			mt, _, err := mime.ParseMediaType(m.ContentType)
			if err != nil {
				mt = strings.ToLower(strings.TrimSpace(m.ContentType))
			}
			if c = r.codecs[mt]; c == nil {
				return messaging.Permanent(fmt.Errorf("%w: no codec for content type %q", ErrUndecodable, m.ContentType))
			}
		}
		err := rt.handle(ctx, m, c)
		if errors.Is(err, ErrUndecodable) {
			return messaging.Permanent(err)
		}
		return err
	}
}
