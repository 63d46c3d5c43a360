// Command client-go-runner is the design that client-go sidecars share,
// built here as the baseline of the command benchmark (bench/bench.py
// --only command): client-go's own elector
// (k8s.io/client-go/tools/leaderelection, a LeaseLock, ReleaseOnCancel)
// runs a command under the context that OnStartedLeading receives.
//
//	client-go-runner --kubeconfig PATH --namespace NS --lease-name NAME --identity ID
//	                 [--lease-duration-ms 15000] [--renew-deadline-ms 10000]
//	                 [--retry-period-ms 2000] [--grace-period-ms 5000]
//	                 [--content-type application/json] [-v N] -- CMD ARGS...
//
// What it does, as that design does it:
//   - Once it leads, it starts CMD (exec.CommandContext on OnStartedLeading's
//     context; the child inherits this process's group, as in a container).
//   - When that context ends (renewing failed for a renew deadline, or a
//     signal), the child gets SIGTERM and, --grace-period-ms later, SIGKILL.
//     client-go cancels that context and releases the Lease at the same
//     time: nothing waits for the child to have exited before the release.
//   - SIGTERM or SIGINT to this process cancels the elector's context:
//     client-go releases the Lease (ReleaseOnCancel) and the child is
//     signalled as above.
//   - It exits once the elector has returned and the child has been reaped:
//     with the child's status (128+N if a signal N killed it) if the child
//     ran, else 1 after a lost term, 0 after a signal. A child that exits on
//     its own ends the term too (the context is cancelled, the Lease
//     released). It never campaigns twice: a restart is the kubelet's.
//
// Lines on stderr say what happened (klog's for client-go's own).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "client-go-runner %s: %s\n", time.Now().UTC().Format("15:04:05.000000"), fmt.Sprintf(format, args...))
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "client-go-runner: "+format+"\n", args...)
	os.Exit(code)
}

// child keeps the outcome of the command, once it has run.
type child struct {
	mu     sync.Mutex
	ran    bool
	status int
	done   chan struct{}
}

// acquiredLock is the LeaseLock, noting whether a write made this
// identity the holder: client-go calls OnStartedLeading in a goroutine of
// its own right after such a write, so once Run has returned this tells
// whether a child may be on its way.
type acquiredLock struct {
	resourcelock.Interface
	acquired atomic.Bool
}

func (l *acquiredLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, ler)
	if err == nil && ler.HolderIdentity == l.Identity() {
		l.acquired.Store(true)
	}
	return err
}

func (l *acquiredLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, ler)
	if err == nil && ler.HolderIdentity == l.Identity() {
		l.acquired.Store(true)
	}
	return err
}

// exitStatus is a shell's reading of a finished command: its code, or
// 128+N when signal N ended it; 127 if it could not start. (After the
// context's cancellation Run returns the context's error even for a child
// that exited 0, so the process state is read, not the error.)
func exitStatus(cmd *exec.Cmd) int {
	state := cmd.ProcessState
	if state == nil {
		return 127
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
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
		graceMs     = flag.Int("grace-period-ms", 5000, "from SIGTERM to SIGKILL of the child, in milliseconds")
		contentType = flag.String("content-type", "application/json", "wire format of requests: application/json or application/vnd.kubernetes.protobuf")
	)
	klog.InitFlags(nil)
	flag.Parse()
	command := flag.Args()
	if *leaseName == "" || *identity == "" || len(command) == 0 {
		fail(2, "--lease-name, --identity and a command (after --) are required")
	}
	if *graceMs < 0 {
		fail(2, "--grace-period-ms must not be negative")
	}

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail(2, "kubeconfig: %v", err)
	}
	config.ContentType = *contentType
	config.AcceptContentTypes = *contentType
	config.UserAgent = "kube-elector-interop/client-go-runner"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fail(2, "client: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-signals
		say("%v: cancelling the elector (the child gets SIGTERM, the Lease is released)", sig)
		cancel()
	}()

	ch := &child{done: make(chan struct{})}
	lock := &acquiredLock{Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: *leaseName, Namespace: *namespace},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: *identity},
	}}
	lec := leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: true,
		LeaseDuration:   time.Duration(*leaseMs) * time.Millisecond,
		RenewDeadline:   time.Duration(*renewMs) * time.Millisecond,
		RetryPeriod:     time.Duration(*retryMs) * time.Millisecond,
		Name:            *leaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				defer close(ch.done)
				cmd := exec.CommandContext(leading, command[0], command[1:]...)
				cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
				cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
				cmd.WaitDelay = time.Duration(*graceMs) * time.Millisecond
				say("started leading: starting %q", command)
				if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
					say("the child did not start: %v", err)
				}
				status := exitStatus(cmd)
				ch.mu.Lock()
				ch.ran, ch.status = true, status
				ch.mu.Unlock()
				say("the child ended (status %d)", status)
				// A child that ends on its own ends the term.
				cancel()
			},
			OnStoppedLeading: func() { say("stopped leading") },
			OnNewLeader:      func(id string) { say("leader: %s", id) },
		},
	}
	le, err := leaderelection.NewLeaderElector(lec)
	if err != nil {
		fail(2, "%v", err)
	}
	say("campaigning for %s/%s as %s", *namespace, *leaseName, *identity)
	le.Run(ctx)
	signalled := ctx.Err() != nil

	if lock.acquired.Load() {
		// OnStartedLeading was (or is about to be) called: wait for its
		// child, which the cancelled context has signalled (WaitDelay
		// bounds the wait after the SIGTERM).
		<-ch.done
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	switch {
	case ch.ran:
		os.Exit(ch.status)
	case signalled:
		os.Exit(0)
	default:
		os.Exit(1)
	}
}
