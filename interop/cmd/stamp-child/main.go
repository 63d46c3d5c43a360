// Command stamp-child is the workload of the command benchmark
// (bench/bench.py --only command): a child that an elector runs only while
// it leads. It appends one JSON line to FILE when it starts and one when
// SIGTERM or SIGINT comes, each with the wall clock (Unix time, ns) and its
// pid, then exits at once (status 0). SIGKILL leaves no stop line: the
// harness sees the pid gone instead.
//
//	stamp-child FILE LABEL
//
// Lines (one write each, O_APPEND, so concurrent children never interleave):
//
//	{"event":"start","label":"r1","pid":123,"ts_unix_nanos":...,"fencing_token":"7"}
//	{"event":"stop","label":"r1","pid":123,"ts_unix_nanos":...}
//
// fencing_token is $KUBE_ELECTOR_FENCING_TOKEN ("" when the elector sets
// none).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type stamp struct {
	Event        string `json:"event"`
	Label        string `json:"label"`
	Pid          int    `json:"pid"`
	TsUnixNanos  int64  `json:"ts_unix_nanos"`
	FencingToken string `json:"fencing_token,omitempty"`
}

func write(f *os.File, s stamp) {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		fmt.Fprintln(os.Stderr, "stamp-child:", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: stamp-child FILE LABEL")
		os.Exit(2)
	}
	// Registered before the start line: a SIGTERM that follows it is
	// always caught.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	f, err := os.OpenFile(os.Args[1], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stamp-child:", err)
		os.Exit(1)
	}
	label, pid := os.Args[2], os.Getpid()
	write(f, stamp{Event: "start", Label: label, Pid: pid, TsUnixNanos: time.Now().UnixNano(),
		FencingToken: os.Getenv("KUBE_ELECTOR_FENCING_TOKEN")})
	<-signals
	write(f, stamp{Event: "stop", Label: label, Pid: pid, TsUnixNanos: time.Now().UnixNano()})
	os.Exit(0)
}
