// Command apiserver runs a real kube-apiserver, built from the
// k8s.io/kubernetes module, on an embedded etcd, on 127.0.0.1 only, and
// writes kubeconfigs for it. It prints "READY <url> <kubeconfig>" once
// /readyz answers ok and the default namespace exists, and stops on
// SIGTERM/SIGINT. Logs go to stderr.
//
// Authentication is a static token file: "admin" (in system:masters) and,
// with --kubeconfig-nowatch, "nowatch", whom RBAC allows get, list, create
// and update on Leases but not watch. With --coordinated-leader-election
// (the default) the CoordinatedLeaderElection feature gate is on and
// coordination.k8s.io/v1beta1 (LeaseCandidate) is served.
//
// Everything a client depends on is kept in --data-dir: the tokens, the
// service-account keys, the serving certificate (kube-apiserver reuses the
// one in its --cert-dir) and the ports. A start on the data of an earlier
// one therefore serves the same address with the same credentials, so its
// kubeconfigs keep working across a restart. With --etcd-only the program
// runs etcd alone (and prints "ETCD <url>"); with --etcd-servers it runs
// kube-apiserver alone on that etcd: the two can then be restarted apart.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// Bearer tokens of the static token file: random, made at the first start
// on a data directory (the server listens on 127.0.0.1 only, but other local
// users need not share it) and read back at later ones.
var adminToken, noWatchToken string

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func main() {
	dataDir := flag.String("data-dir", "", "directory for etcd data and certificates (a temporary one if empty)")
	port := flag.Int("port", 0, "secure port on 127.0.0.1 (0 picks a free one)")
	kubeconfig := flag.String("kubeconfig", "", "where to write the admin kubeconfig (default DATA_DIR/admin.kubeconfig)")
	kubeconfigNoWatch := flag.String("kubeconfig-nowatch", "", "where to write a kubeconfig for a user who may get, list, create and update leases but not watch them (optional)")
	cle := flag.Bool("coordinated-leader-election", true, "enable the CoordinatedLeaderElection feature gate and serve coordination.k8s.io/v1beta1 (LeaseCandidate)")
	fsync := flag.Bool("etcd-fsync", false, "let etcd fsync its writes (off by default: a test server needs speed, not durability)")
	verbosity := flag.Int("v", 0, "kube-apiserver log verbosity")
	etcdOnly := flag.Bool("etcd-only", false, "run etcd alone on DATA_DIR/etcd (its client port kept in DATA_DIR/etcd-port), print \"ETCD <url>\" once ready, and serve until a signal")
	etcdServers := flag.String("etcd-servers", "", "run kube-apiserver alone on this etcd (e.g. the URL that --etcd-only printed) instead of an embedded one")
	watchCache := flag.Bool("watch-cache", true, "kube-apiserver's --watch-cache: false serves every watch from etcd, so that a resume below etcd's compacted revision gets 410 Gone")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "apiserver: unexpected arguments:", flag.Args())
		os.Exit(2)
	}

	o := options{dataDir: *dataDir, port: *port, kubeconfig: *kubeconfig, kubeconfigNoWatch: *kubeconfigNoWatch, cle: *cle, fsync: *fsync, verbosity: *verbosity,
		etcdServers: *etcdServers, watchCache: *watchCache}
	run := run
	if *etcdOnly {
		run = runEtcd
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(1)
	}
}

type options struct {
	dataDir, kubeconfig, kubeconfigNoWatch, etcdServers string
	port, verbosity                                     int
	cle, fsync, watchCache                              bool
}

// runEtcd serves etcd alone until a signal.
func runEtcd(o options) error {
	if o.dataDir == "" {
		return fmt.Errorf("--etcd-only needs --data-dir (its data is what outlives a restart)")
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	etcdURL, etcd, err := startEtcd(filepath.Join(o.dataDir, "etcd"), o.fsync)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()
	fmt.Printf("ETCD %s\n", etcdURL)
	os.Stdout.Sync()
	select {
	case <-ctx.Done():
		return nil
	case err := <-etcd.Err():
		return fmt.Errorf("etcd stopped: %v", err)
	}
}

// keptPort is the port kept in file: read back if the file exists, else
// a free one (when wanted is 0), written there for the next start.
func keptPort(file string, wanted int) (int, error) {
	if wanted == 0 {
		if b, err := os.ReadFile(file); err == nil {
			if _, err := fmt.Sscan(string(b), &wanted); err != nil {
				return 0, fmt.Errorf("%s: %v", file, err)
			}
			return wanted, nil
		}
		var err error
		if wanted, err = freePort(); err != nil {
			return 0, err
		}
	}
	return wanted, os.WriteFile(file, []byte(fmt.Sprintf("%d\n", wanted)), 0o600)
}

// keptTokens reads the admin and nowatch tokens of an earlier start from
// the token file, or makes new ones.
func keptTokens(file string) (string, string) {
	b, err := os.ReadFile(file)
	if err == nil {
		var admin, nowatch string
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Split(line, ",")
			if len(fields) < 2 {
				continue
			}
			switch fields[1] {
			case "admin":
				admin = fields[0]
			case "nowatch":
				nowatch = fields[0]
			}
		}
		if admin != "" && nowatch != "" {
			return admin, nowatch
		}
	}
	return randomToken(), randomToken()
}

func run(o options) error {
	dataDir, port, kubeconfig, kubeconfigNoWatch := o.dataDir, o.port, o.kubeconfig, o.kubeconfigNoWatch
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "kube-elector-apiserver-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if kubeconfig == "" {
		kubeconfig = filepath.Join(dataDir, "admin.kubeconfig")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	etcdURL := o.etcdServers
	if etcdURL == "" {
		url, etcd, err := startEtcd(filepath.Join(dataDir, "etcd"), o.fsync)
		if err != nil {
			return fmt.Errorf("starting etcd: %w", err)
		}
		defer etcd.Close()
		etcdURL = url
	}

	port, err := keptPort(filepath.Join(dataDir, "port"), port)
	if err != nil {
		return err
	}
	certDir := filepath.Join(dataDir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	saKey, saPub, err := serviceAccountKeys(certDir)
	if err != nil {
		return err
	}
	tokens := filepath.Join(certDir, "tokens.csv")
	adminToken, noWatchToken = keptTokens(tokens)
	tokenFile := fmt.Sprintf("%s,admin,1,\"system:masters\"\n%s,nowatch,2,\"kube-elector:nowatch\"\n", adminToken, noWatchToken)
	if err := os.WriteFile(tokens, []byte(tokenFile), 0o600); err != nil {
		return err
	}

	args := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + certDir,
		"--etcd-servers=" + etcdURL,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--endpoint-reconciler-type=none",
		"--logging-format=text",
		fmt.Sprintf("--watch-cache=%t", o.watchCache),
		fmt.Sprintf("-v=%d", o.verbosity),
	}
	if o.cle {
		// LeaseCandidate (coordinated leader election) is beta and off by default.
		args = append(args,
			"--feature-gates=CoordinatedLeaderElection=true",
			"--runtime-config=coordination.k8s.io/v1beta1=true",
		)
	}
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(args)
	apiErr := make(chan error, 1)
	go func() { apiErr <- cmd.ExecuteContext(ctx) }()

	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := waitReady(ctx, server, apiErr); err != nil {
		return err
	}
	cluster, err := clusterEntry(server, filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		return err
	}
	if err := writeKubeconfig(kubeconfig, cluster, "admin", adminToken); err != nil {
		return err
	}
	if kubeconfigNoWatch != "" {
		if err := grantNoWatch(ctx, server); err != nil {
			return fmt.Errorf("granting the nowatch user: %w", err)
		}
		// RBAC reads bindings from an informer: wait until it has this one.
		if err := waitFor(ctx, apiErr, "the nowatch user's RBAC", func() bool {
			return getAs(noWatchToken, server+"/apis/coordination.k8s.io/v1/namespaces/default/leases")
		}); err != nil {
			return err
		}
		if err := writeKubeconfig(kubeconfigNoWatch, cluster, "nowatch", noWatchToken); err != nil {
			return err
		}
	}
	fmt.Printf("READY %s %s\n", server, kubeconfig)
	os.Stdout.Sync()

	select {
	case <-ctx.Done():
		select {
		case <-apiErr:
		case <-time.After(10 * time.Second):
		}
		return nil
	case err := <-apiErr:
		return fmt.Errorf("kube-apiserver stopped: %v", err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd starts etcd on dir, on the ports of an earlier start on dir
// if there was one (kept beside it), so that its URL and its member's peer
// URL stay the same across restarts.
func startEtcd(dir string, fsync bool) (string, *embed.Etcd, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", nil, err
	}
	clientPort, err := keptPort(dir+"-port", 0)
	if err != nil {
		return "", nil, err
	}
	peerPort, err := keptPort(dir+"-peer-port", 0)
	if err != nil {
		return "", nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = !fsync
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", clientPort))
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return "", nil, fmt.Errorf("etcd was not ready within 60s")
	}
	return client.String(), e, nil
}

// serviceAccountKeys returns the key pair kept in dir, made at the first start.
func serviceAccountKeys(dir string) (string, string, error) {
	keyPath := filepath.Join(dir, "sa.key")
	pubPath := filepath.Join(dir, "sa.pub")
	if _, err := os.Stat(keyPath); err == nil {
		if _, err := os.Stat(pubPath); err == nil {
			return keyPath, pubPath, nil
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(pubPath, pubPEM, 0o600); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, nil
}

// waitReady polls /readyz and the default namespace (created by the
// apiserver's bootstrap controller) with the admin token.
func waitReady(ctx context.Context, server string, apiErr <-chan error) error {
	return waitFor(ctx, apiErr, "kube-apiserver", func() bool {
		return getAs(adminToken, server+"/readyz") && getAs(adminToken, server+"/api/v1/namespaces/default")
	})
}

// waitFor polls ready every 100 ms for up to 3 minutes.
func waitFor(ctx context.Context, apiErr <-chan error, what string, ready func() bool) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if ready() {
			return nil
		}
		select {
		case err := <-apiErr:
			return fmt.Errorf("kube-apiserver exited while waiting for %s: %v", what, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s was not ready within 3 minutes", what)
}

var probe = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// getAs tells whether GET url with the bearer token answers 200.
func getAs(token, url string) bool {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := probe.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func grantNoWatch(ctx context.Context, server string) error {
	cs, err := kubernetes.NewForConfig(&rest.Config{
		Host:            server,
		BearerToken:     adminToken,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
	})
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-elector-nowatch"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"coordination.k8s.io"},
			Resources: []string{"leases"},
			Verbs:     []string{"get", "list", "create", "update"},
		}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-elector-nowatch"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "nowatch"}},
	}
	if _, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// clusterEntry is the cluster of the kubeconfigs: the server and the CA
// that kube-apiserver made for its self-signed serving certificate (the
// last certificate of --cert-dir's apiserver.crt), once a request verified
// with it has succeeded; else insecure-skip-tls-verify.
func clusterEntry(server, servingCert string) (string, error) {
	insecure := fmt.Sprintf("    server: %s\n    insecure-skip-tls-verify: true\n", server)
	chain, err := os.ReadFile(servingCert)
	if err != nil {
		return "", err
	}
	var ca []byte
	for rest := chain; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil && cert.IsCA {
			ca = pem.EncodeToMemory(block)
		}
	}
	if ca == nil {
		fmt.Fprintln(os.Stderr, "apiserver: no CA in", servingCert, "- kubeconfigs skip TLS verification")
		return insecure, nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	resp, err := client.Get(server + "/readyz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver: the serving certificate does not verify with its CA - kubeconfigs skip TLS verification:", err)
		return insecure, nil
	}
	resp.Body.Close()
	return fmt.Sprintf("    server: %s\n    certificate-authority-data: %s\n", server, base64.StdEncoding.EncodeToString(ca)), nil
}

// writeKubeconfig writes a kubeconfig for cluster (from clusterEntry) and
// the user's token, written to a temporary file and renamed, so that no
// reader sees half a file.
func writeKubeconfig(path, cluster, user, token string) error {
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kube-elector-e2e
  cluster:
%scontexts:
- name: kube-elector-e2e
  context:
    cluster: kube-elector-e2e
    user: %s
    namespace: default
current-context: kube-elector-e2e
users:
- name: %s
  user:
    token: %s
`, cluster, user, user, token)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
