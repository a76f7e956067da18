package main

import (
	"fmt"
	"net"
	"os"
	"sync"
)

// sdNotify sends state ("READY=1", "STOPPING=1", "STATUS=...") to the
// service manager over the datagram socket systemd names in NOTIFY_SOCKET
// (sd_notify(3); "@name" is an abstract socket). Without the variable
// (not run by systemd with Type=notify) it does nothing.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	return nil
}

// readyOnce sends READY=1 the first time it is called: once SIP is served
// (sbcd.Start without a call store, the first Serve with one).
type readyOnce struct {
	once   sync.Once
	status string
	log    interface{ Warn(string, ...any) }
}

func (r *readyOnce) ready() {
	r.once.Do(func() {
		if err := sdNotify("READY=1\nSTATUS=" + r.status); err != nil {
			r.log.Warn("systemd notification failed", "error", err)
		}
	})
}
