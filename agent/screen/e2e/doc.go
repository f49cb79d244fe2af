// Package e2e tests the cashier screen in a real browser: headless Debian
// chromium driven by playwright-core (node), against a real agent and its
// API on 127.0.0.1. The test skips with a clear message when chromium, node
// or playwright-core (npm ci in agent/screen, which `make deps` runs) are
// missing, and fails instead when TILLPOINT_HIL=require.
package e2e
