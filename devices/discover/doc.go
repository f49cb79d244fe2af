// Package discover finds the devices attached to a till: serial ports with
// their USB vendor and product IDs and serial number (go.bug.st/serial's
// enumerator), stable /dev/serial/by-id paths, PC/SC readers (pcscd),
// USB line printers (/dev/usb/lp*) and evdev input devices that look like
// barcode scanners. The agent's configuration matches what it finds by
// VID:PID (and serial number) or by path, through devices.ID.Match.
//
// References: Linux sysfs (/sys/class/usbmisc/lpN/device, idVendor,
// idProduct, serial), /proc/bus/input/devices, udev's persistent
// /dev/serial/by-id links.
//
// What this package must never do: open a device for I/O (listing must
// not disturb a scanner or printer in use), or fail whole because one
// source failed: each source reports its own error.
package discover
