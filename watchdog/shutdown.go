package watchdog

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// ExitShutdownOverrun is the exit status of a process whose shutdown
// overran its grace (BoundShutdown).
const ExitShutdownOverrun = 3

// BoundShutdown bounds the shutdown that ctx's end starts (a signal): if
// the process still runs grace later, it writes why and a goroutine dump
// to out and exits with ExitShutdownOverrun, whatever is stuck. Arm it
// before anything that could block, so that a stuck start is covered too.
// stop disarms it.
func BoundShutdown(ctx context.Context, grace time.Duration, out io.Writer) (stop func()) {
	return boundShutdown(ctx, grace, out, os.Exit)
}

func boundShutdown(ctx context.Context, grace time.Duration, out io.Writer, exit func(int)) func() {
	disarmed := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-disarmed:
		case <-t.C:
			Dump(out, fmt.Sprintf("shutdown did not finish within its grace of %v", grace))
			exit(ExitShutdownOverrun)
		}
	})
	return func() {
		stopAfter()
		select {
		case <-disarmed:
		default:
			close(disarmed)
		}
	}
}
