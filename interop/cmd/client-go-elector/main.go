// Command client-go-elector runs client-go's own leader elector
// (k8s.io/client-go/tools/leaderelection with a LeaseLock) and prints one
// JSON line per event, in the line protocol of interop/README.md.
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

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

var (
	identity string
	out      sync.Mutex
)

func emit(event, leader string) {
	out.Lock()
	defer out.Unlock()
	line, _ := json.Marshal(map[string]any{
		"ts_unix_nanos": time.Now().UnixNano(),
		"impl":          "client-go",
		"identity":      identity,
		"event":         event,
		"leader":        leader,
	})
	fmt.Println(string(line))
	os.Stdout.Sync()
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	namespace := flag.String("namespace", "default", "namespace of the Lease")
	leaseName := flag.String("lease-name", "", "name of the Lease")
	flag.StringVar(&identity, "identity", "", "holder identity")
	leaseMs := flag.Int("lease-duration-ms", 15000, "lease duration")
	renewMs := flag.Int("renew-deadline-ms", 10000, "renew deadline")
	retryMs := flag.Int("retry-period-ms", 2000, "retry period")
	release := flag.Bool("release-on-cancel", true, "release the Lease on SIGTERM")
	klog.InitFlags(nil)
	flag.Parse()
	if *leaseName == "" || identity == "" {
		fmt.Fprintln(os.Stderr, "--lease-name and --identity are required")
		os.Exit(2)
	}

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconfig:", err)
		os.Exit(2)
	}
	// JSON, not client-go's default protobuf: the embedded Lease API server
	// speaks JSON only (a real kube-apiserver speaks both).
	config.ContentType = "application/json"
	config.AcceptContentTypes = "application/json"
	client := kubernetes.NewForConfigOrDie(config)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1ObjectMeta(*leaseName, *namespace),
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	emit("ready", "")
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: *release,
		LeaseDuration:   time.Duration(*leaseMs) * time.Millisecond,
		RenewDeadline:   time.Duration(*renewMs) * time.Millisecond,
		RetryPeriod:     time.Duration(*retryMs) * time.Millisecond,
		Name:            *leaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { emit("started_leading", identity) },
			OnStoppedLeading: func() { emit("stopped_leading", "") },
			OnNewLeader:      func(id string) { emit("new_leader", id) },
		},
	})
	emit("exited", "")
}
