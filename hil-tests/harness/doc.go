// Package harness runs the real tillpoint binary for end-to-end tests: it
// builds the binary once per test process (Main), runs a cloud on SQLite in
// a temporary directory with its own port (StartCloud), makes enrollment
// codes and enrolls terminals through the binary's own commands (Cloud.Enroll),
// runs agents with their own config, state directory and port (StartAgent),
// and puts a fault-injecting TCP proxy between each agent and the cloud
// (Proxy: cut, slow, drop responses, restore).
//
// Every process runs in its own process group and is killed when its test
// ends, whatever the outcome; every file lives under t.TempDir(). When a
// test fails, the logs of the processes it started are printed with it.
//
// It must never be used outside tests: it builds and kills processes.
package harness
