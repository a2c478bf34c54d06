package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"

	"cloakroom/client"
)

// proxyEnv are the variables that name an HTTP proxy (NO_PROXY only makes
// exceptions).
var proxyEnv = []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"}

// envProxy returns the client's proxy choice from the environment, or nil
// when no proxy variable is set. It says on stderr, once per proxy, which
// one the client goes through (never the credentials).
func envProxy(stderr io.Writer) client.ProxyFunc {
	set := false
	for _, k := range proxyEnv {
		set = set || os.Getenv(k) != ""
	}
	if !set {
		return nil
	}
	return announced(client.ProxyFromEnvironment, stderr)
}

// announced is pick saying on stderr, once per proxy, that the client goes
// through it.
func announced(pick client.ProxyFunc, stderr io.Writer) client.ProxyFunc {
	var mu sync.Mutex
	said := map[string]bool{}
	return func(target *url.URL) (*url.URL, error) {
		u, err := pick(target)
		if err != nil || u == nil {
			return u, err
		}
		shown := client.ProxyDisplay(u)
		mu.Lock()
		defer mu.Unlock()
		if !said[shown] {
			said[shown] = true
			fmt.Fprintf(stderr, "cloakroom: through HTTP proxy %s (from the environment), first for %s\n", shown, target.Host)
		}
		return u, nil
	}
}
