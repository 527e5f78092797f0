package harness

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

// MachineLine describes the Go version and the machine, for report headers.
func MachineLine() string {
	return fmt.Sprintf("%s on %s/%s, %d CPUs (GOMAXPROCS %d)", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
}

// Scale is the scale table's results.
type Scale struct{}

// ScaleTable runs the scale table.
func ScaleTable(ctx context.Context, ep Endpoints, transports []string, rounds int, progress io.Writer) *Scale {
	return &Scale{}
}

// Markdown writes the table.
func (s *Scale) Markdown(w io.Writer) {}
