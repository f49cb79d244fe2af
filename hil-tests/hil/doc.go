// Package hil decides what a hardware-in-the-loop test does when what it
// needs (socat, pcscd, the vpcd driver) is missing: it skips with a message
// that says what to install, or fails when TILLPOINT_HIL=require, as CI sets.
//
// It must never install anything or start services itself; the helpers in
// hil-tests/pcscd and hil-tests/ptypair do that, and call Need for what they
// cannot do.
package hil
