// Package deploytest holds the deployment tests: every stage as its own OS process of the
// built binary, against one NATS server or a 3-node JetStream cluster on loopback, with
// processes and servers killed mid-stream; results are compared with the one-process `run`.
// It also validates docker-compose.yml and the files under deploy/. The tests are in the
// _test.go files; stages/internal/proctest is the process harness they share.
package deploytest
