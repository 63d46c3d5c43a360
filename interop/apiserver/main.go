// Command apiserver runs a real kube-apiserver, built from the
// k8s.io/kubernetes module, on an embedded etcd, on 127.0.0.1 only, and
// writes kubeconfigs for it. It prints "READY <url> <kubeconfig>" once the
// API answers and the default namespace exists, and stops on SIGTERM/SIGINT.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

const (
	adminToken   = "kube-elector-admin-token"
	noWatchToken = "kube-elector-nowatch-token"
)

func main() {
	dataDir := flag.String("data-dir", "", "directory for etcd data and certificates (a temporary one if empty)")
	port := flag.Int("port", 0, "secure port on 127.0.0.1 (0 picks a free one)")
	kubeconfig := flag.String("kubeconfig", "", "where to write the admin kubeconfig (default DATA_DIR/admin.kubeconfig)")
	kubeconfigNoWatch := flag.String("kubeconfig-nowatch", "", "where to write a kubeconfig for a user without watch on leases (optional)")
	flag.Parse()

	if err := run(*dataDir, *port, *kubeconfig, *kubeconfigNoWatch); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(1)
	}
}

func run(dataDir string, port int, kubeconfig, kubeconfigNoWatch string) error {
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "kube-elector-apiserver-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	if kubeconfig == "" {
		kubeconfig = filepath.Join(dataDir, "admin.kubeconfig")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	etcdURL, etcd, err := startEtcd(filepath.Join(dataDir, "etcd"))
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()

	if port == 0 {
		if port, err = freePort(); err != nil {
			return err
		}
	}
	certDir := filepath.Join(dataDir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	saKey, saPub, err := writeServiceAccountKeys(certDir)
	if err != nil {
		return err
	}
	tokens := filepath.Join(certDir, "tokens.csv")
	tokenFile := fmt.Sprintf("%s,admin,1,\"system:masters\"\n%s,nowatch,2,\"kube-elector:nowatch\"\n", adminToken, noWatchToken)
	if err := os.WriteFile(tokens, []byte(tokenFile), 0o600); err != nil {
		return err
	}

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs([]string{
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
		"-v=0",
	})
	apiErr := make(chan error, 1)
	go func() { apiErr <- cmd.ExecuteContext(ctx) }()

	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := waitReady(ctx, server, apiErr); err != nil {
		return err
	}
	if err := writeKubeconfig(kubeconfig, server, "admin", adminToken); err != nil {
		return err
	}
	if kubeconfigNoWatch != "" {
		if err := grantNoWatch(ctx, server); err != nil {
			return fmt.Errorf("granting the nowatch user: %w", err)
		}
		if err := writeKubeconfig(kubeconfigNoWatch, server, "nowatch", noWatchToken); err != nil {
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

func startEtcd(dir string) (string, *embed.Etcd, error) {
	clientPort, err := freePort()
	if err != nil {
		return "", nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
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

func writeServiceAccountKeys(dir string) (string, string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	keyPath := filepath.Join(dir, "sa.key")
	pubPath := filepath.Join(dir, "sa.pub")
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
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-apiErr:
			return fmt.Errorf("kube-apiserver exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if get(client, server+"/readyz") && get(client, server+"/api/v1/namespaces/default") {
			return nil
		}
	}
	return fmt.Errorf("kube-apiserver was not ready within 3 minutes")
}

func get(client *http.Client, url string) bool {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
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
			Verbs:     []string{"get", "list", "create", "update", "patch", "delete"},
		}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-elector-nowatch"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "nowatch"}},
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	return err
}

func writeKubeconfig(path, server, user, token string) error {
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kube-elector-e2e
  cluster:
    server: %s
    insecure-skip-tls-verify: true
contexts:
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
`, server, user, user, token)
	return os.WriteFile(path, []byte(content), 0o600)
}
