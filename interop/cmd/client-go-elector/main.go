// Command client-go-elector runs client-go's own leader elector
// (k8s.io/client-go/tools/leaderelection with a LeaseLock) against the API
// server of a kubeconfig and prints one JSON line per event, in the line
// protocol of interop/README.md, so that a test harness can drive it beside
// other implementations on one Lease.
//
// SIGTERM or SIGINT cancels the elector's context: with
// --release-on-cancel=true (the default) client-go releases the Lease, and
// the program prints "exited" and exits 0 once the elector has returned.
// SIGKILL simply kills it, as a crash would.
//
// --herd and --many are benchmark modes with many electors in the one
// process, driven by a harness over stdin (herd.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Events of the line protocol.
const (
	eventReady          = "ready"
	eventStartedLeading = "started_leading"
	eventStoppedLeading = "stopped_leading"
	eventNewLeader      = "new_leader"
	eventExited         = "exited"
)

type line struct {
	TsUnixNanos int64  `json:"ts_unix_nanos"`
	Impl        string `json:"impl"`
	Identity    string `json:"identity"`
	Event       string `json:"event"`
	Leader      string `json:"leader"`
}

// reporter writes the event lines and keeps the one piece of state that
// needs care: whether a term is open, so that a term is closed exactly once
// and, on a signal, before the context is cancelled (and so before client-go
// releases the Lease and anyone else can take it).
type reporter struct {
	identity string

	mu          sync.Mutex
	leading     bool
	terminating bool
}

// emit prints one line; callers hold r.mu.
func (r *reporter) emit(event, leader string) {
	b, err := json.Marshal(line{
		TsUnixNanos: time.Now().UnixNano(),
		Impl:        "client-go",
		Identity:    r.identity,
		Event:       event,
		Leader:      leader,
	})
	if err != nil {
		panic(err)
	}
	b = append(b, '\n')
	// os.Stdout is unbuffered: one write per line is the flush.
	if _, err := os.Stdout.Write(b); err != nil {
		// The reader is gone; nobody is left to tell.
		os.Exit(3)
	}
}

func (r *reporter) event(event, leader string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(event, leader)
}

// started opens a term unless a signal already came (then client-go is
// about to release, or has released, the Lease: there is no term to report).
func (r *reporter) started() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.terminating {
		return false
	}
	r.leading = true
	r.emit(eventStartedLeading, r.identity)
	return true
}

// stopped closes the open term, if any.
func (r *reporter) stopped() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leading {
		r.leading = false
		r.emit(eventStoppedLeading, "")
	}
}

// terminate marks the signal and closes the open term.
func (r *reporter) terminate() {
	r.mu.Lock()
	r.terminating = true
	r.mu.Unlock()
	r.stopped()
}

func main() {
	var (
		kubeconfig  = flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server (default $KUBECONFIG, else in-cluster)")
		namespace   = flag.String("namespace", "default", "namespace of the Lease")
		leaseName   = flag.String("lease-name", "", "name of the Lease (required)")
		identity    = flag.String("identity", "", "holder identity (required)")
		leaseMs     = flag.Int("lease-duration-ms", 15000, "LeaseDuration in milliseconds")
		renewMs     = flag.Int("renew-deadline-ms", 10000, "RenewDeadline in milliseconds")
		retryMs     = flag.Int("retry-period-ms", 2000, "RetryPeriod in milliseconds")
		release     = flag.Bool("release-on-cancel", true, "ReleaseOnCancel: release the Lease on SIGTERM/SIGINT")
		exitOnLost  = flag.Bool("exit-on-lost", false, "exit (status 1, after an exited line) when leadership is lost, instead of campaigning again")
		contentType = flag.String("content-type", "application/json", "wire format of requests: application/json, or application/vnd.kubernetes.protobuf (client-go's usual default; real API servers only)")
		herdN       = flag.Int("herd", 0, "benchmark: run N candidates on --lease-name, identities <identity>-<i>, and hand over --rounds times (see herd.go)")
		rounds      = flag.Int("rounds", 1, "with --herd: number of graceful handovers")
		manyN       = flag.Int("many", 0, "benchmark: run N electors, each alone on Lease <lease-name>-<i> as <identity>-<i> (see herd.go)")
		windowMs    = flag.Int("window-ms", 5000, "with --many: measuring window in milliseconds")
		binaryVer   = flag.String("coordinated-binary-version", "", "coordinated leader election: declare a LeaseCandidate (leaderelection.NewCandidate) with this binary version and run the elector with Coordinated: true (needs --coordinated-emulation-version)")
		emulation   = flag.String("coordinated-emulation-version", "", "coordinated leader election: the LeaseCandidate's emulation version")
	)
	klog.InitFlags(nil) // -v=N etc.: client-go's own logs go to stderr
	flag.Parse()
	if *leaseName == "" || *identity == "" {
		fmt.Fprintln(os.Stderr, "client-go-elector: --lease-name and --identity are required")
		os.Exit(2)
	}
	if *herdN != 0 || *manyN != 0 {
		t := timing{
			namespace: *namespace,
			lease:     time.Duration(*leaseMs) * time.Millisecond,
			renew:     time.Duration(*renewMs) * time.Millisecond,
			retry:     time.Duration(*retryMs) * time.Millisecond,
		}
		switch {
		case *herdN != 0 && *manyN != 0:
			fail(2, "--herd and --many exclude each other")
		case *herdN != 0:
			if *herdN < 2 || *rounds < 0 {
				fail(2, "--herd needs at least 2 candidates and --rounds at least 0")
			}
			// client-go's default client-side limits (QPS 5, burst 10).
			runHerd(sharedClient(*kubeconfig, *contentType, manyQPS, manyBurst), t, *leaseName, *identity, *herdN, *rounds)
		default:
			if *manyN < 1 || *windowMs < 1 {
				fail(2, "--many and --window-ms must be positive")
			}
			runMany(sharedClient(*kubeconfig, *contentType, manyQPS, manyBurst), t, *leaseName, *identity, *manyN, time.Duration(*windowMs)*time.Millisecond)
		}
	}
	rep := &reporter{identity: *identity}

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client-go-elector: kubeconfig:", err)
		os.Exit(2)
	}
	config.ContentType = *contentType
	config.AcceptContentTypes = *contentType
	config.UserAgent = "kube-elector-interop/client-go-elector"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client-go-elector: client:", err)
		os.Exit(2)
	}

	lec := leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: *leaseName, Namespace: *namespace},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: *identity},
		},
		ReleaseOnCancel: *release,
		LeaseDuration:   time.Duration(*leaseMs) * time.Millisecond,
		RenewDeadline:   time.Duration(*renewMs) * time.Millisecond,
		RetryPeriod:     time.Duration(*retryMs) * time.Millisecond,
		Name:            *leaseName,
		Coordinated:     *binaryVer != "",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				if !rep.started() {
					return
				}
				// The leader's context ends when leadership is lost, or on
				// a signal (then the term was closed already).
				<-ctx.Done()
				rep.stopped()
			},
			// Called when Run returns, leading or not: the term, if still
			// open, ends here.
			OnStoppedLeading: rep.stopped,
			OnNewLeader:      func(id string) { rep.event(eventNewLeader, id) },
		},
	}
	// Validate here, to exit 2 with a message rather than panic in RunOrDie.
	if _, err := leaderelection.NewLeaderElector(lec); err != nil {
		fmt.Fprintln(os.Stderr, "client-go-elector:", err)
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		// Close the term before cancelling: the leader work stops now, and
		// only after this does client-go release the Lease.
		rep.terminate()
		cancel()
	}()

	if *binaryVer != "" {
		if *emulation == "" {
			fail(2, "--coordinated-binary-version needs --coordinated-emulation-version")
		}
		// The candidate is named after the identity: the controller writes
		// the candidate's name as holderIdentity.
		candidate, waiter, err := leaderelection.NewCandidate(client, *namespace, *identity, *leaseName,
			*binaryVer, *emulation, coordinationv1.OldestEmulationVersion)
		if err != nil {
			fail(2, "NewCandidate: %v", err)
		}
		go candidate.Run(ctx)
		waiter.WaitForCacheSync(ctx.Done())
	}

	rep.event(eventReady, "")
	status := 0
	for {
		// A LeaderElector runs once: after a lost term, campaign anew.
		le, err := leaderelection.NewLeaderElector(lec)
		if err != nil {
			fmt.Fprintln(os.Stderr, "client-go-elector:", err)
			status = 2
			break
		}
		le.Run(ctx)
		if ctx.Err() != nil {
			break
		}
		if *exitOnLost {
			status = 1
			break
		}
		// Run returned without a signal: the term was lost (renew deadline
		// passed). Wait a retry period, as client-go's loop would, then go on.
		select {
		case <-ctx.Done():
		case <-time.After(lec.RetryPeriod):
		}
		if ctx.Err() != nil {
			break
		}
	}
	rep.event(eventExited, "")
	os.Exit(status)
}
