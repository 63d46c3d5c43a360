// Benchmark modes: many client-go electors in one process, driven by a
// harness over stdin and stdout.
//
//	--herd N --rounds R    N candidates on one Lease, R graceful handovers
//	--many N --window-ms W N Leases, each led by its own elector, and the
//	                       process's CPU share and RSS over W milliseconds
//
// Both follow client-go's documented path: one kubernetes.Clientset for the
// whole process, and per candidate a LeaderElectionConfig with a LeaseLock
// and ReleaseOnCancel, leaderelection.NewLeaderElector and Run(ctx) with a
// context of its own. Each mode prints one JSON line per step on stdout and
// then reads one line from stdin before going on, so that the harness can
// read the API server's request counters between the steps. Timeouts exit 1
// with a message on stderr.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

const (
	herdWait = 120 * time.Second // each wait of --herd
	manyWait = 600 * time.Second // until all of --many lead
	manyExit = 30 * time.Second  // --many: longest wait for the Runs at the end

	// --many and --herd raise client-go's client-side rate limiter of the
	// shared Clientset (default QPS 5, burst 10): N electors renew N Leases
	// (or N followers poll one) every retry period through that one
	// limiter, so with the defaults 200 electors could not even acquire
	// their Leases in time, and an operator that runs many electors from one
	// process must raise these limits the same way.
	manyQPS   = 100000
	manyBurst = 100000
)

// timing is what all candidates of a mode share.
type timing struct {
	namespace string
	lease     time.Duration
	renew     time.Duration
	retry     time.Duration
}

// candidate is one elector of the process and what its callbacks reported.
type candidate struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{} // closed when its Run loop has returned

	// Guarded by the herd's mutex.
	live      bool      // not cancelled by us
	exited    bool      // done is closed
	leading   bool      // between OnStartedLeading and the end of its Run
	startedAt time.Time // of the last OnStartedLeading (with its monotonic reading)
	believed  string    // the last leader OnNewLeader reported
}

// herd holds the candidates of the process; every change of a candidate's
// state wakes whoever waits in await.
type herd struct {
	client *kubernetes.Clientset // one for all candidates of the process
	timing timing

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every change
	cands   []*candidate
}

func newHerd(client *kubernetes.Clientset, t timing) *herd {
	return &herd{client: client, timing: t, changed: make(chan struct{})}
}

// notify wakes the waiters; callers hold h.mu.
func (h *herd) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// config is the LeaderElectionConfig of candidate c on Lease leaseName.
func (h *herd) config(c *candidate, leaseName string) leaderelection.LeaderElectionConfig {
	return leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: leaseName, Namespace: h.timing.namespace},
			Client:     h.client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: c.id},
		},
		ReleaseOnCancel: true,
		LeaseDuration:   h.timing.lease,
		RenewDeadline:   h.timing.renew,
		RetryPeriod:     h.timing.retry,
		Name:            leaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				// Taken first: the time the candidate learnt it leads.
				now := time.Now()
				h.mu.Lock()
				defer h.mu.Unlock()
				// client-go starts this callback in a goroutine: if the term
				// has ended already (ctx done), there is nothing to record.
				if ctx.Err() == nil {
					c.leading = true
					c.startedAt = now
					h.notify()
				}
			},
			OnStoppedLeading: func() {
				h.mu.Lock()
				defer h.mu.Unlock()
				c.leading = false
				h.notify()
			},
			OnNewLeader: func(id string) {
				h.mu.Lock()
				defer h.mu.Unlock()
				c.believed = id
				h.notify()
			},
		},
	}
}

// start adds a candidate with identity id on Lease leaseName and runs it
// with a context of its own.
func (h *herd) start(id, leaseName string) *candidate {
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, cancel: cancel, done: make(chan struct{}), live: true}
	lec := h.config(c, leaseName)
	h.mu.Lock()
	h.cands = append(h.cands, c)
	h.notify()
	h.mu.Unlock()
	go func() {
		defer func() {
			h.mu.Lock()
			c.exited = true
			c.leading = false
			close(c.done)
			h.notify()
			h.mu.Unlock()
		}()
		for {
			le, err := leaderelection.NewLeaderElector(lec)
			if err != nil {
				fail(2, "%v", err)
			}
			le.Run(ctx)
			if ctx.Err() != nil {
				return
			}
			// Run returned without a cancel: the term was lost (renew
			// deadline passed). Campaign again after a retry period, as the
			// default mode does, and say so: it skews a benchmark.
			fmt.Fprintf(os.Stderr, "client-go-elector: %s lost its term on %s without being cancelled; campaigning again\n", id, leaseName)
			select {
			case <-ctx.Done():
				return
			case <-time.After(h.timing.retry):
			}
		}
	}()
	return c
}

// cancelOne ends candidate c: it is no longer live, and its Run releases the
// Lease if it leads (ReleaseOnCancel) and returns.
func (h *herd) cancelOne(c *candidate) {
	h.mu.Lock()
	c.live = false
	h.notify()
	h.mu.Unlock()
	c.cancel()
}

// await waits until cond (called with h.mu held) holds, or exits 1 after
// timeout with a message naming what it waited for.
func (h *herd) await(timeout time.Duration, what string, cond func() bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ok := cond()
		changed := h.changed
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			h.mu.Lock()
			state := h.describe()
			h.mu.Unlock()
			fail(1, "timed out after %v waiting for %s;%s", timeout, what, state)
		}
	}
}

// soleLeader is the one live candidate that leads, if exactly one does, and
// every live candidate's OnNewLeader reported it; else nil. Callers hold h.mu.
func (h *herd) soleLeader() *candidate {
	var leader *candidate
	for _, c := range h.cands {
		if c.live && c.leading {
			if leader != nil {
				return nil
			}
			leader = c
		}
	}
	if leader == nil {
		return nil
	}
	for _, c := range h.cands {
		if c.live && c.believed != leader.id {
			return nil
		}
	}
	return leader
}

// describe says, for a timeout message, how many candidates lead and what
// the first live ones reported. Callers hold h.mu.
func (h *herd) describe() string {
	var b strings.Builder
	live, leading, shown := 0, 0, 0
	for _, c := range h.cands {
		if !c.live {
			continue
		}
		live++
		if c.leading {
			leading++
		}
		if shown < 12 {
			shown++
			fmt.Fprintf(&b, " %s(leading=%t believes=%q)", c.id, c.leading, c.believed)
		}
	}
	if shown < live {
		b.WriteString(" ...")
	}
	return fmt.Sprintf(" %d live, %d leading:%s", live, leading, b.String())
}

func (h *herd) cancelAll() {
	h.mu.Lock()
	cands := append([]*candidate(nil), h.cands...)
	h.mu.Unlock()
	for _, c := range cands {
		h.cancelOne(c)
	}
}

func (h *herd) allExited() bool {
	for _, c := range h.cands {
		if !c.exited {
			return false
		}
	}
	return true
}

// sharedClient is the one Clientset of the process; qps and burst of 0 keep
// client-go's defaults.
func sharedClient(kubeconfig, contentType string, qps float32, burst int) *kubernetes.Clientset {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fail(2, "kubeconfig: %v", err)
	}
	config.ContentType = contentType
	config.AcceptContentTypes = contentType
	config.UserAgent = "kube-elector-interop/client-go-elector"
	config.QPS = qps
	config.Burst = burst
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fail(2, "client: %v", err)
	}
	return client
}

// checkTiming exits 2 unless client-go accepts the timing, and unless the
// lease duration is at least a second: client-go writes
// leaseDurationSeconds as LeaseDuration truncated to whole seconds, and a
// Lease of 0 seconds is expired for every follower at every poll.
func (h *herd) checkTiming() {
	if h.timing.lease < time.Second {
		fail(2, "--lease-duration-ms must be at least 1000 (client-go writes whole seconds)")
	}
	if _, err := leaderelection.NewLeaderElector(h.config(&candidate{id: "check"}, "check")); err != nil {
		fail(2, "%v", err)
	}
}

// runHerd is --herd: n candidates on Lease leaseName, rounds handovers.
func runHerd(client *kubernetes.Clientset, t timing, leaseName, prefix string, n, rounds int) {
	h := newHerd(client, t)
	h.checkTiming()
	in := bufio.NewReader(os.Stdin)
	for i := 0; i < n; i++ {
		h.start(fmt.Sprintf("%s-%d", prefix, i), leaseName)
	}
	for r := 0; r < rounds; r++ {
		var leader *candidate
		h.await(herdWait, fmt.Sprintf("round %d: one leader that every candidate knows", r), func() bool {
			leader = h.soleLeader()
			return leader != nil
		})
		printLine(struct {
			Event  string `json:"event"`
			Round  int    `json:"round"`
			Leader string `json:"leader"`
		}{"herd_ready", r, leader.id})
		readLine(in)

		// time.Now carries a monotonic reading, and Sub uses it.
		t0 := time.Now()
		h.cancelOne(leader)
		h.await(herdWait, fmt.Sprintf("round %d: the Run of %s to return after its cancel", r, leader.id), func() bool {
			return leader.exited
		})
		var next *candidate
		h.await(herdWait, fmt.Sprintf("round %d: a new leader after %s released", r, leader.id), func() bool {
			for _, c := range h.cands {
				if c.live && c.leading {
					next = c
					return true
				}
			}
			return false
		})
		h.mu.Lock()
		t1 := next.startedAt
		h.mu.Unlock()
		h.await(herdWait, fmt.Sprintf("round %d: every candidate to know the new leader %s", r, next.id), func() bool {
			return h.soleLeader() == next
		})
		printLine(struct {
			Event  string      `json:"event"`
			Round  int         `json:"round"`
			Ms     json.Number `json:"ms"`
			Leader string      `json:"leader"`
		}{"herd_handover", r, decimal(float64(t1.Sub(t0))/float64(time.Millisecond), 3), next.id})
		readLine(in)

		h.start(fmt.Sprintf("%s-%d", prefix, n+r), leaseName)
	}
	h.cancelAll()
	h.await(herdWait, "every Run to return at the end", h.allExited)
	printLine(struct {
		Event string `json:"event"`
	}{"herd_done"})
	os.Exit(0)
}

// runMany is --many: n electors, each alone on Lease <leaseName>-<i>.
func runMany(client *kubernetes.Clientset, t timing, leaseName, prefix string, n int, window time.Duration) {
	h := newHerd(client, t)
	h.checkTiming()
	in := bufio.NewReader(os.Stdin)
	for i := 0; i < n; i++ {
		h.start(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s-%d", leaseName, i))
	}
	leading := func() int {
		count := 0
		for _, c := range h.cands {
			if c.leading {
				count++
			}
		}
		return count
	}
	h.await(manyWait, fmt.Sprintf("all %d electors to lead", n), func() bool {
		return leading() == n
	})
	// Settle for a retry period, as the other implementations do.
	time.Sleep(t.retry)
	printLine(struct {
		Event    string `json:"event"`
		Electors int    `json:"electors"`
		QPS      int    `json:"qps"`
		Burst    int    `json:"burst"`
	}{"many_ready", n, manyQPS, manyBurst})
	readLine(in)

	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(window)
	cpu1, wall1 := cpuTime(), time.Now()
	h.mu.Lock()
	count := leading()
	h.mu.Unlock()
	printLine(struct {
		Event    string      `json:"event"`
		Electors int         `json:"electors"`
		Leading  int         `json:"leading"`
		RSSKiB   int64       `json:"rss_kib"`
		CPUShare json.Number `json:"cpu_share"`
	}{"many", n, count, rssKiB(), decimal((cpu1-cpu0).Seconds()/wall1.Sub(wall0).Seconds(), 4)})
	readLine(in)

	h.cancelAll()
	done := make(chan struct{})
	go func() {
		for _, c := range h.cands {
			<-c.done
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(manyExit):
		fmt.Fprintf(os.Stderr, "client-go-elector: not every Run returned within %v; exiting anyway\n", manyExit)
	}
	os.Exit(0)
}

func fail(status int, format string, args ...any) {
	fmt.Fprintln(os.Stderr, "client-go-elector:", fmt.Sprintf(format, args...))
	os.Exit(status)
}

// printLine writes v as one JSON line; os.Stdout is unbuffered, so the one
// write is the flush.
func printLine(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	if _, err := os.Stdout.Write(append(b, '\n')); err != nil {
		os.Exit(3)
	}
}

// readLine waits for the harness's line; an end of stdin means the harness
// is gone.
func readLine(in *bufio.Reader) {
	if _, err := in.ReadString('\n'); err != nil {
		if err == io.EOF {
			fail(1, "stdin closed while waiting for the harness")
		}
		fail(1, "stdin: %v", err)
	}
}

func decimal(x float64, places int) json.Number {
	return json.Number(strconv.FormatFloat(x, 'f', places, 64))
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail(1, "getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssKiB is VmRSS of /proc/self/status.
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fail(1, "%v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				fail(1, "VmRSS %q: %v", rest, err)
			}
			return kib
		}
	}
	fail(1, "no VmRSS in /proc/self/status")
	return 0
}
