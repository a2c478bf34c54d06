// Package e2e holds in-process end-to-end tests of Cloakroom: the real
// signaling server (over real WebSockets on 127.0.0.1), the real relay store
// and the real Go client library, with no mocks. Everything is in the
// _test.go files; run them with
//
//	go test -race ./e2e
package e2e
