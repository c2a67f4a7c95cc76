package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/govm/govm/internal/agentkit"
)

// The user-network tests' servers and clients (e2e's TestUserNet). They
// run in L1 and, from L1's files, inside guests too.
//
//	govm-host http ADDR DIR [N]    serve GET /NAME from DIR; a POST /NAME's
//	                               body is summed into DIR/NAME.sum; exit
//	                               after N requests (default never)
//	govm-host dns ADDR NAME=IP...  answer A queries for the names (UDP)
//	govm-host put ADDR FILE        send FILE to ADDR (TCP), retrying the
//	                               connection for up to a minute, and wait
//	                               for the peer to close
//	govm-host ping ADDR            ICMP echo ADDR (an unprivileged ICMP
//	                               socket) until it answers, up to a minute
//	govm-host get URL              GET URL, retrying for up to a minute
//	                               until it answers 200; say the body's
//	                               length and CRC-32C
//	govm-host post URL FILE        POST FILE to URL; say the answer
func netCommand(args []string) (bool, error) {
	switch {
	case (len(args) == 3 || len(args) == 4) && args[0] == "http":
		n := -1
		if len(args) == 4 {
			var err error
			if n, err = strconv.Atoi(args[3]); err != nil || n < 1 {
				return true, fmt.Errorf("http: %q is not a count", args[3])
			}
		}
		return true, serveHTTP(args[1], args[2], n)
	case len(args) >= 3 && args[0] == "dns":
		return true, serveDNS(args[1], args[2:])
	case len(args) == 3 && args[0] == "put":
		return true, put(args[1], args[2])
	case len(args) == 2 && args[0] == "ping":
		return true, ping(args[1])
	case len(args) == 2 && args[0] == "get":
		return true, get(args[1])
	case len(args) == 3 && args[0] == "post":
		return true, post(args[1], args[2])
	}
	return false, nil
}

// serveHTTP serves dir at addr until n requests were answered.
func serveHTTP(addr, dir string, n int) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	var served atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Join(dir, filepath.Base(r.URL.Path))
		switch r.Method {
		case http.MethodGet:
			http.ServeFile(w, r, name)
		case http.MethodPost:
			s := agentkit.NewNetSum()
			size, err := io.Copy(s, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := os.WriteFile(name+".sum", []byte(agentkit.NetSumHex(s)+"\n"), 0o644); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "%d %s\n", size, agentkit.NetSumHex(s))
		default:
			http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		}
		if served.Add(1) == int64(n) {
			close(done)
		}
	})
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	<-done
	time.Sleep(100 * time.Millisecond) // the last response on its way
	return srv.Close()
}

// serveDNS answers A queries for the names given as NAME=IP, and says
// NXDOMAIN for any other.
func serveDNS(addr string, records []string) error {
	a := map[string][4]byte{}
	for _, r := range records {
		name, ip, ok := strings.Cut(r, "=")
		v4 := net.ParseIP(ip).To4()
		if !ok || v4 == nil {
			return fmt.Errorf("dns: %q: want NAME=IPv4", r)
		}
		a[strings.ToLower(strings.TrimSuffix(name, "."))+"."] = [4]byte(v4)
	}
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError}
		ip, known := a[strings.ToLower(q.Name.String())]
		if known {
			rh.RCode = dnsmessage.RCodeSuccess
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		if known && q.Type == dnsmessage.TypeA {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: ip})
		}
		out, err := b.Finish()
		if err == nil {
			_, _ = c.WriteTo(out, from)
		}
	}
}

// netTry is how long the clients keep trying: the other side is a VM
// still booting.
const netTry = time.Minute

// put sends file to addr over TCP.
func put(addr, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(netTry)
	for {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			if time.Now().After(deadline) {
				return err
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		defer c.Close()
		if _, err := io.Copy(c, f); err != nil {
			return err
		}
		// Done when the peer has it all: it closes once it read to the
		// end, and this side's VM may power off right after.
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, c)
		return err
	}
}

// get fetches url, trying again on any failure until netTry has passed.
func get(url string) error {
	deadline := time.Now().Add(netTry)
	for {
		n, sum, err := getOnce(url)
		if err == nil {
			fmt.Printf("%d %s\n", n, sum)
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func getOnce(url string) (int64, string, error) {
	c := http.Client{Timeout: netTry}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	s := agentkit.NewNetSum()
	n, err := io.Copy(s, resp.Body)
	return n, agentkit.NetSumHex(s), err
}

// post sends file's bytes to url and prints the answer.
func post(url, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	resp, err := http.Post(url, "application/octet-stream", f)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

// ping sends ICMP echo requests to addr until one is answered.
func ping(addr string) error {
	dst, err := net.ResolveIPAddr("ip4", addr)
	if err != nil {
		return err
	}
	c, err := icmp.ListenPacket("udp4", "0.0.0.0")
	if err != nil {
		return fmt.Errorf("ICMP socket (net.ipv4.ping_group_range?): %w", err)
	}
	defer c.Close()
	deadline := time.Now().Add(netTry)
	buf := make([]byte, 1500)
	for seq := 1; time.Now().Before(deadline); seq++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: seq, Data: []byte("govm")}}
		b, _ := m.Marshal(nil)
		sent := time.Now()
		if _, err := c.WriteTo(b, &net.UDPAddr{IP: dst.IP}); err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			r, err := icmp.ParseMessage(1, buf[:n])
			if err == nil && r.Type == ipv4.ICMPTypeEchoReply {
				agentkit.PrintLine("GOVM-HOST-PING %s seq=%d rtt_us=%d", addr, seq, time.Since(sent).Microseconds())
				return nil
			}
		}
	}
	return errors.New("ping " + addr + ": no answer")
}
