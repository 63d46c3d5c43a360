// Command controller-runtime-manager runs a controller-runtime manager with
// leader election on a Lease and one controller over the ConfigMaps of a
// namespace that carry a label selector, and prints the line protocol of
// interop/README.md, so that bench/bench.py can time its failovers beside
// kube-elector's controller on one kube-apiserver.
//
// The reconcile body is the benchmark's, the same on every stack: read the
// ConfigMap from the cache; if its annotation --annotation differs from its
// data key --data-key, merge-patch the annotation to that value and print a
// `reconciled` line (object, value); otherwise do nothing. A driver that
// changes the data key of some objects during a failover so sees when the
// new leader has caught up with each.
//
// --warmup=true sets the controller's EnableWarmup (controller-runtime
// v0.22+, `controller.Options.EnableWarmup`): a follower starts the
// controller's sources (its informer LISTs and WATCHes, its queue fills)
// before it is elected, and only its workers wait for the election.
// --warmup=false is the default manager: sources start after the election.
//
// Leader election is the manager's own (client-go's LeaderElector through
// controller-runtime), with LeaderElectionReleaseOnCancel. The one change:
// the Lease lock is built here (as controller-runtime's NewResourceLock
// builds it: a LeaseLock, a client timeout of max(renew deadline / 2, 1 s))
// so that its holder identity is --identity instead of hostname_UUID, which
// the line protocol needs.
//
// With --warmup=true it prints `synced` once the follower's ConfigMap
// informer has listed (its store is warm).
//
// SIGTERM or SIGINT: `stopped_leading` at once (if leading), then the
// manager's context is cancelled: it stops the controller (waiting for
// reconciles in flight), then releases the Lease; `exited`, exit 0. A lost
// Lease ends the manager with an error, as controller-runtime does:
// `stopped_leading`, `exited`, exit 1.
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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const implName = "controller-runtime"

type line struct {
	TsUnixNanos int64  `json:"ts_unix_nanos"`
	Impl        string `json:"impl"`
	Identity    string `json:"identity"`
	Event       string `json:"event"`
	Leader      string `json:"leader"`
	Object      string `json:"object,omitempty"`
	Value       string `json:"value,omitempty"`
}

// reporter writes the lines and keeps whether a term is open, so that a
// term is closed exactly once and, on a signal, before the manager's
// context is cancelled (and so before the Lease is released).
type reporter struct {
	identity string

	mu          sync.Mutex
	leading     bool
	terminating bool
}

// emit prints one line; callers hold r.mu.
func (r *reporter) emit(l line) {
	l.TsUnixNanos = time.Now().UnixNano()
	l.Impl = implName
	l.Identity = r.identity
	b, err := json.Marshal(l)
	if err != nil {
		panic(err)
	}
	// os.Stdout is unbuffered: one write per line is the flush.
	if _, err := os.Stdout.Write(append(b, '\n')); err != nil {
		os.Exit(3)
	}
}

func (r *reporter) event(event string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(line{Event: event})
}

func (r *reporter) reconciled(object, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(line{Event: "reconciled", Object: object, Value: value})
}

func (r *reporter) started() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.terminating || r.leading {
		return
	}
	r.leading = true
	r.emit(line{Event: "started_leading", Leader: r.identity})
}

func (r *reporter) stopped() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leading {
		r.leading = false
		r.emit(line{Event: "stopped_leading"})
	}
}

func (r *reporter) terminate() {
	r.mu.Lock()
	r.terminating = true
	r.mu.Unlock()
	r.stopped()
}

// reconciler is the benchmark's reconcile body.
type reconciler struct {
	client     client.Client
	annotation string
	dataKey    string
	report     *reporter
}

func (c *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cm corev1.ConfigMap
	if err := c.client.Get(ctx, req.NamespacedName, &cm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	want := cm.Data[c.dataKey]
	if cm.Annotations[c.annotation] == want {
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(cm.DeepCopy())
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[c.annotation] = want
	if err := c.client.Patch(ctx, &cm, patch); err != nil {
		return ctrl.Result{}, err
	}
	c.report.reconciled(req.Name, want)
	return ctrl.Result{}, nil
}

func fail(status int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "controller-runtime-manager: "+format+"\n", args...)
	os.Exit(status)
}

func main() {
	// A flag set of our own: controller-runtime registers --kubeconfig on
	// flag.CommandLine itself.
	flags := flag.NewFlagSet("controller-runtime-manager", flag.ExitOnError)
	klog.InitFlags(flags)
	kubeconfig := flags.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	namespace := flags.String("namespace", "default", "namespace of the Lease and of the ConfigMaps")
	leaseName := flags.String("lease-name", "", "name of the Lease")
	identity := flags.String("identity", "", "holder identity")
	leaseMs := flags.Int("lease-duration-ms", 15000, "lease duration")
	renewMs := flags.Int("renew-deadline-ms", 10000, "renew deadline")
	retryMs := flags.Int("retry-period-ms", 2000, "retry period")
	warmup := flags.Bool("warmup", false, "the controller's EnableWarmup")
	selector := flags.String("selector", "", "label selector of the watched ConfigMaps")
	concurrency := flags.Int("concurrency", 4, "MaxConcurrentReconciles")
	annotation := flags.String("annotation", "bench.kube-elector.io/seen", "annotation the reconcile keeps equal to --data-key")
	dataKey := flags.String("data-key", "gen", "data key the annotation follows")
	_ = flags.Parse(os.Args[1:]) // ExitOnError: exits 2 on a bad flag
	if *leaseName == "" || *identity == "" {
		fail(2, "--lease-name and --identity are required")
	}
	sel, err := labels.Parse(*selector)
	if err != nil {
		fail(2, "--selector: %v", err)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))

	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: *kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		fail(2, "kubeconfig: %v", err)
	}
	// kube-rs has no client-side rate limit; client-go's default (QPS 5,
	// burst 10) would throttle the takeover's patches, so both stacks run
	// unthrottled.
	cfg.QPS, cfg.Burst = 10000, 20000

	lease := time.Duration(*leaseMs) * time.Millisecond
	renew := time.Duration(*renewMs) * time.Millisecond
	retry := time.Duration(*retryMs) * time.Millisecond

	// The lock as controller-runtime's leaderelection.NewResourceLock builds
	// it, but with our identity.
	lockCfg := rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	lockCfg.Timeout = max(renew/2, time.Second)
	lockClient, err := kubernetes.NewForConfig(lockCfg)
	if err != nil {
		fail(2, "client: %v", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: *namespace, Name: *leaseName},
		Client:     lockClient.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: *identity},
	}

	report := &reporter{identity: *identity}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{*namespace: {}},
			ByObject:          map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {Label: sel}},
		},
		Metrics:                             metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:              "0",
		LeaderElection:                      true,
		LeaderElectionID:                    *leaseName,
		LeaderElectionNamespace:             *namespace,
		LeaderElectionReleaseOnCancel:       true,
		LeaderElectionResourceLockInterface: lock,
		LeaseDuration:                       &lease,
		RenewDeadline:                       &renew,
		RetryPeriod:                         &retry,
	})
	if err != nil {
		fail(2, "manager: %v", err)
	}
	err = ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: *concurrency, EnableWarmup: warmup}).
		Complete(&reconciler{client: mgr.GetClient(), annotation: *annotation, dataKey: *dataKey, report: report})
	if err != nil {
		fail(2, "controller: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		report.terminate()
		cancel()
	}()
	go func() {
		select {
		case <-mgr.Elected():
			report.started()
		case <-ctx.Done():
		}
	}()
	if *warmup {
		// With warmup the controller's source has the manager's cache start
		// a ConfigMap informer before the election; this waits until that
		// informer (the same one: one per kind) has synced and says so, so
		// that a driver knows when a follower is warm (client-go's
		// WaitForCacheSync polls every 100 ms: the line may come that much
		// late). Without warmup there is nothing to wait for: asking for
		// the informer would start it, which the cold mode does not do.
		go func() {
			informer, err := mgr.GetCache().GetInformer(ctx, &corev1.ConfigMap{}, cache.BlockUntilSynced(false))
			if err == nil && toolscache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
				report.event("synced")
			}
		}()
	}
	report.event("ready")
	err = mgr.Start(ctx)
	report.stopped()
	report.event("exited")
	if err != nil {
		fmt.Fprintf(os.Stderr, "controller-runtime-manager: %v\n", err)
		os.Exit(1)
	}
}
