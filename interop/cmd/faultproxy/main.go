// Command faultproxy is a TCP proxy with faults, for putting a real API
// server behind a bad network. Each client identity gets its own listening
// port on 127.0.0.1, each forwarding to one upstream address; bytes pass
// through untouched (TLS is end to end), so the upstream's certificate must
// name 127.0.0.1, which the proxy's address is too.
//
// Faults, per client or for all, set over an HTTP admin endpoint with JSON
// bodies (see the admin type and interop/README.md):
//
//   - latency: each chunk of bytes is delivered that much after it was read,
//     per direction (up: client to server, down: server to client) or both;
//   - black hole: bytes read are dropped, connections stay open (a TLS
//     stream that lost bytes is broken for good: its next record fails);
//   - partition: bytes are held, not dropped, in both directions, and new
//     connections are accepted and held too, as a network that stopped
//     delivering; healing either keeps the connections (the held bytes go
//     through late, as TCP would retransmit them) or resets them;
//   - reset: every open connection is closed with a TCP RST, at once;
//   - refuse: new connections are closed with a RST as soon as they are
//     accepted (existing ones keep working).
//
// It prints "READY http://127.0.0.1:PORT" (the admin endpoint) on stdout
// once listening, and stops on SIGTERM/SIGINT. Logs go to stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"
)

func main() {
	upstream := flag.String("upstream", "", "host:port every client port forwards to (required)")
	admin := flag.String("admin", "127.0.0.1:0", "address of the HTTP admin endpoint")
	verbose := flag.Bool("v", false, "log every fault change and connection on stderr")
	flag.Parse()
	if *upstream == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "faultproxy: --upstream host:port is required, and nothing else")
		os.Exit(2)
	}
	p := &proxy{upstream: *upstream, clients: map[string]*client{}, verbose: *verbose, changed: make(chan struct{})}
	ln, err := net.Listen("tcp", *admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultproxy: admin:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := &http.Server{Handler: p.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Printf("READY http://%s\n", ln.Addr())
	_ = os.Stdout.Sync()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "faultproxy:", err)
		os.Exit(1)
	}
	p.closeAll()
}

// faults in force for one target ("all" or a client). Durations in ms.
type faults struct {
	UpLatencyMs   int64 `json:"up_latency_ms"`
	DownLatencyMs int64 `json:"down_latency_ms"`
	UpBlackHole   bool  `json:"up_black_hole"`
	DownBlackHole bool  `json:"down_black_hole"`
	Partition     bool  `json:"partition"`
	Refuse        bool  `json:"refuse"`
}

// merge is what a client suffers: its own faults and those for all.
func merge(a, b faults) faults {
	return faults{
		UpLatencyMs:   max(a.UpLatencyMs, b.UpLatencyMs),
		DownLatencyMs: max(a.DownLatencyMs, b.DownLatencyMs),
		UpBlackHole:   a.UpBlackHole || b.UpBlackHole,
		DownBlackHole: a.DownBlackHole || b.DownBlackHole,
		Partition:     a.Partition || b.Partition,
		Refuse:        a.Refuse || b.Refuse,
	}
}

type proxy struct {
	upstream string
	verbose  bool

	mu      sync.Mutex
	clients map[string]*client
	all     faults
	// changed is closed (and replaced) whenever faults change, waking pumps
	// that wait for a partition to heal.
	changed chan struct{}
}

type client struct {
	name     string
	listener net.Listener
	own      faults

	// Guarded by the proxy's mutex.
	conns    map[*pair]struct{}
	accepted uint64
	refused  uint64
	resets   uint64
	dropped  uint64 // bytes dropped by a black hole
}

// pair is one proxied connection.
type pair struct {
	down net.Conn // the client's side
	up   net.Conn // the upstream's side
	once sync.Once
}

// close ends both sides; with rst, as a TCP reset.
func (p *pair) close(rst bool) {
	p.once.Do(func() {
		for _, c := range []net.Conn{p.down, p.up} {
			if c == nil {
				continue
			}
			if t, ok := c.(*net.TCPConn); ok && rst {
				_ = t.SetLinger(0)
			}
			_ = c.Close()
		}
	})
}

func (p *proxy) logf(format string, args ...any) {
	if p.verbose {
		fmt.Fprintf(os.Stderr, "faultproxy %s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

// effective is what client c suffers now, and a channel closed at the next change.
func (p *proxy) effective(c *client) (faults, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return merge(p.all, c.own), p.changed
}

// client returns the client called name, listening on a new port if new.
func (p *proxy) client(name string) (*client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[name]; ok {
		return c, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &client{name: name, listener: ln, conns: map[*pair]struct{}{}}
	p.clients[name] = c
	go p.accept(c)
	return c, nil
}

func (p *proxy) accept(c *client) {
	for {
		conn, err := c.listener.Accept()
		if err != nil {
			return
		}
		f, _ := p.effective(c)
		pr := &pair{down: conn}
		if f.Refuse {
			p.mu.Lock()
			c.refused++
			p.mu.Unlock()
			p.logf("%s: refused a connection", c.name)
			pr.close(true)
			continue
		}
		p.mu.Lock()
		c.accepted++
		c.conns[pr] = struct{}{}
		p.mu.Unlock()
		go p.serve(c, pr)
	}
}

func (p *proxy) serve(c *client, pr *pair) {
	defer func() {
		pr.close(false)
		p.mu.Lock()
		delete(c.conns, pr)
		p.mu.Unlock()
	}()
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		p.logf("%s: upstream: %v", c.name, err)
		return
	}
	p.mu.Lock()
	_, open := c.conns[pr]
	pr.up = up
	p.mu.Unlock()
	if !open {
		// Reset while dialling.
		pr.close(true)
		_ = up.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pump(c, pr, pr.down, up, true); done <- struct{}{} }()
	go func() { p.pump(c, pr, up, pr.down, false); done <- struct{}{} }()
	// Either direction ending ends the connection (TLS has no use for a
	// half-closed stream).
	<-done
}

type chunk struct {
	data []byte
	at   time.Time // when to deliver it
}

// pump copies from src to dst under the faults of direction up (client to
// server) or down.
func (p *proxy) pump(c *client, pr *pair, src, dst net.Conn, up bool) {
	chunks := make(chan chunk, 64)
	go func() {
		defer close(chunks)
		var last time.Time
		for {
			buf := make([]byte, 32*1024)
			n, err := src.Read(buf)
			if n > 0 {
				f, _ := p.effective(c)
				hole, lat := f.DownBlackHole, f.DownLatencyMs
				if up {
					hole, lat = f.UpBlackHole, f.UpLatencyMs
				}
				if hole {
					p.mu.Lock()
					c.dropped += uint64(n)
					p.mu.Unlock()
				} else {
					at := time.Now().Add(time.Duration(lat) * time.Millisecond)
					if at.Before(last) {
						at = last // keep the order of bytes
					}
					last = at
					chunks <- chunk{data: buf[:n], at: at}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer pr.close(false)
	for ch := range chunks {
		if d := time.Until(ch.at); d > 0 {
			time.Sleep(d)
		}
		// Held while partitioned.
		for {
			f, changed := p.effective(c)
			if !f.Partition {
				break
			}
			<-changed
		}
		if _, err := dst.Write(ch.data); err != nil {
			return
		}
	}
}

// detach removes every open connection of the clients named by target
// from their sets and returns them, for a reset; callers hold p.mu.
func (p *proxy) detach(target string) []*pair {
	var pairs []*pair
	for _, c := range p.clients {
		if target != "all" && c.name != target {
			continue
		}
		for pr := range c.conns {
			pairs = append(pairs, pr)
			delete(c.conns, pr)
			c.resets++
		}
	}
	return pairs
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	for _, c := range p.clients {
		_ = c.listener.Close()
	}
	pairs := p.detach("all")
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.close(true)
	}
}

// faultRequest is the body of POST /faults: absent keys leave a fault as
// it is. latency_ms sets both directions.
type faultRequest struct {
	Target        string `json:"target"`
	Clear         bool   `json:"clear"`
	LatencyMs     *int64 `json:"latency_ms,omitempty"`
	UpLatencyMs   *int64 `json:"up_latency_ms,omitempty"`
	DownLatencyMs *int64 `json:"down_latency_ms,omitempty"`
	BlackHole     *bool  `json:"black_hole,omitempty"`
	UpBlackHole   *bool  `json:"up_black_hole,omitempty"`
	DownBlackHole *bool  `json:"down_black_hole,omitempty"`
	Partition     *bool  `json:"partition,omitempty"`
	Refuse        *bool  `json:"refuse,omitempty"`
	Reset         bool   `json:"reset"`
}

func (p *proxy) apply(r faultRequest) (int, error) {
	if r.Target == "" {
		r.Target = "all"
	}
	p.mu.Lock()
	if r.Clear {
		p.all = faults{}
		for _, c := range p.clients {
			c.own = faults{}
		}
	} else {
		f := &p.all
		if r.Target != "all" {
			c, ok := p.clients[r.Target]
			if !ok {
				p.mu.Unlock()
				return 0, fmt.Errorf("no client %q (POST /clients first)", r.Target)
			}
			f = &c.own
		}
		setInt := func(dst *int64, v *int64) {
			if v != nil {
				*dst = max(*v, 0)
			}
		}
		setBool := func(dst *bool, v *bool) {
			if v != nil {
				*dst = *v
			}
		}
		setInt(&f.UpLatencyMs, r.LatencyMs)
		setInt(&f.DownLatencyMs, r.LatencyMs)
		setInt(&f.UpLatencyMs, r.UpLatencyMs)
		setInt(&f.DownLatencyMs, r.DownLatencyMs)
		setBool(&f.UpBlackHole, r.BlackHole)
		setBool(&f.DownBlackHole, r.BlackHole)
		setBool(&f.UpBlackHole, r.UpBlackHole)
		setBool(&f.DownBlackHole, r.DownBlackHole)
		setBool(&f.Partition, r.Partition)
		setBool(&f.Refuse, r.Refuse)
	}
	var pairs []*pair
	if r.Reset {
		pairs = p.detach(r.Target)
	}
	changed := p.changed
	p.changed = make(chan struct{})
	p.mu.Unlock()
	// The reset comes before held pumps are woken: a heal with "reset"
	// delivers none of the bytes a partition held (new connections already
	// see the new faults).
	for _, pr := range pairs {
		pr.close(true)
	}
	close(changed)
	if p.verbose {
		b, _ := json.Marshal(r)
		p.logf("faults %s: reset %d connections", b, len(pairs))
	}
	return len(pairs), nil
}

type clientInfo struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Address  string `json:"address"`
	Open     int    `json:"open"`
	Accepted uint64 `json:"accepted"`
	Refused  uint64 `json:"refused"`
	Resets   uint64 `json:"resets"`
	Dropped  uint64 `json:"dropped_bytes"`
	Faults   faults `json:"faults"`
}

func (p *proxy) info(c *client) clientInfo {
	addr := c.listener.Addr().(*net.TCPAddr)
	return clientInfo{
		Name: c.name, Port: addr.Port, Address: addr.String(), Open: len(c.conns),
		Accepted: c.accepted, Refused: c.refused, Resets: c.resets, Dropped: c.dropped, Faults: c.own,
	}
}

func (p *proxy) routes() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, code int, err error) {
		reply(w, code, map[string]string{"error": err.Error()})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, 200, map[string]bool{"ok": true})
	})
	// POST /clients {"name": "x"}: the port of client x (a new one if x is new).
	mux.HandleFunc("POST /clients", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body); err != nil || body.Name == "" || body.Name == "all" {
			fail(w, 400, fmt.Errorf("the body must be {\"name\": \"<client>\"}, and the name not \"all\""))
			return
		}
		c, err := p.client(body.Name)
		if err != nil {
			fail(w, 500, err)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		reply(w, 200, p.info(c))
	})
	// GET /clients: every client, its connections and counters.
	mux.HandleFunc("GET /clients", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		out := make([]clientInfo, 0, len(p.clients))
		for _, c := range p.clients {
			out = append(out, p.info(c))
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		reply(w, 200, map[string]any{"all": p.all, "clients": out})
	})
	// POST /faults: see faultRequest.
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var body faultRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body); err != nil {
			fail(w, 400, fmt.Errorf("the body must be a JSON object: %w", err))
			return
		}
		n, err := p.apply(body)
		if err != nil {
			fail(w, 404, err)
			return
		}
		reply(w, 200, map[string]any{"ok": true, "reset": n})
	})
	return mux
}
