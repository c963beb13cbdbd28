package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files in dir, and returns their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relais-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TLS with --tls-cert/--tls-key: the server answers HTTPS (HTTP/1.1: no
// HTTP/2 on fasthttp, even to a client that asks for it) and nothing in
// plain HTTP, and the dashboard's cookies, before and after login, are
// Secure with the __Host- prefix. A key that does not match the
// certificate stops the server before it says it listens.
func TestServeTLS(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	certFile, keyFile, pool := selfSigned(t, dir)
	relais(t, bin, "un-mot-de-passe\n", "admin", "user", "add", "--data", data, "--email", "claude@exemple.fr", "--role", "coordinateur", "--password-stdin")

	addr := freeAddr(t)
	srv := startServe(t, bin, addr, "--data", data, "--tls-cert", certFile, "--tls-key", keyFile)
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true},
		// The dashboard answers a login with a redirect; its cookies are
		// on that answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	base := "https://" + addr
	var res *http.Response
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		var err error
		if res, err = client.Get(base + "/healthz"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res == nil {
		t.Fatalf("no HTTPS answer within 20 s; logs:\n%s", srv.logs.String())
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.TLS == nil || res.Proto != "HTTP/1.1" {
		t.Fatalf("/healthz over TLS: %d %s, TLS %v", res.StatusCode, res.Proto, res.TLS != nil)
	}
	if !strings.Contains(srv.logs.String(), `"scheme":"https"`) {
		t.Errorf("the listening line does not say https:\n%s", srv.logs.String())
	}
	if plain, err := http.Get("http://" + addr + "/healthz"); err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Fatal("the TLS server answered plain HTTP")
		}
	}

	res, err := client.Get(base + "/connexion")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var csrf string
	for _, c := range res.Cookies() {
		if c.Name == "__Host-relais_login_csrf" {
			csrf = c.Value
			if !c.Secure || !c.HttpOnly {
				t.Errorf("login CSRF cookie over TLS: Secure %v, HttpOnly %v", c.Secure, c.HttpOnly)
			}
		}
	}
	if csrf == "" {
		t.Fatalf("no __Host- login cookie over TLS: %v", res.Header.Values("Set-Cookie"))
	}
	form := url.Values{"email": {"claude@exemple.fr"}, "password": {"un-mot-de-passe"}, "_csrf": {csrf}}
	req, _ := http.NewRequest(http.MethodPost, base+"/connexion", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "__Host-relais_login_csrf", Value: csrf})
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var session *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "__Host-relais_session" && c.Value != "" {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly {
		t.Fatalf("dashboard login over TLS (%d): session cookie %+v; Set-Cookie: %v", res.StatusCode, session, res.Header.Values("Set-Cookie"))
	}
	srv.stop(t)

	// A key of another certificate: refused before "listening".
	_, otherKey, _ := selfSigned(t, t.TempDir())
	bad := startServe(t, bin, freeAddr(t), "--data", filepath.Join(dir, "other"), "--tls-cert", certFile, "--tls-key", otherKey)
	if err := bad.waitExit(t, 20*time.Second); err == nil {
		t.Fatal("server with a mismatched key exited 0")
	}
	if msg := bad.logs.String(); strings.Contains(msg, "listening") || !strings.Contains(msg, "TLS certificate") {
		t.Fatalf("mismatched key not reported before listening:\n%s", msg)
	}
}
