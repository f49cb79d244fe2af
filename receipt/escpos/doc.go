// Package escpos writes and reads the ESC/POS command language of receipt
// printers: a Builder that turns text and codes into printer bytes, and a
// Decoder that turns printer bytes back into the text lines, QR codes and
// barcodes a printer would print, for tests across the project (the
// hardware-in-the-loop printer emulator uses it too).
//
// Text arrives as UTF-8 and is transcoded to the printer's code page (CP437,
// CP850, CP858, WPC1252). A character the page lacks becomes a sensible
// fallback (é to e, € to EUR, • to *) and, failing that, '?': never a byte
// that would print as a different glyph, and never a control byte.
//
// The package must never do I/O (it builds and parses byte slices; the
// printer drivers in devices/ send them), never panic on input, and never
// emit a command outside the subset below, which every Epson-compatible
// 58 mm and 80 mm printer accepts.
//
// # Protocol
//
// References: Epson "ESC/POS Command Reference for TM printers" (revision
// 2.x), the sections cited per command; Epson "ESC/POS Application
// Programming Guide", QR code chapter.
//
//	LF              0A              print the buffer and feed one line
//	ESC @           1B 40           initialize the printer
//	ESC t n         1B 74 n         select character code table (0 PC437,
//	                                2 PC850, 16 WPC1252, 19 PC858)
//	ESC E n         1B 45 n         emphasized (bold) on/off
//	ESC a n         1B 61 n         justification: 0 left, 1 center, 2 right
//	ESC d n         1B 64 n         print and feed n lines
//	GS ! n          1D 21 n         character size: width-1 in bits 4-6,
//	                                height-1 in bits 0-2 (1 to 8 each)
//	GS ( k          1D 28 6B pL pH cn fn ...
//	                                2D codes; cn 49 is QR: fn 65 model
//	                                (50 = model 2), 67 module size (1-16),
//	                                69 error correction (48-51 = L M Q H),
//	                                80 store data, 81 print stored data
//	GS H n          1D 48 n         HRI position (2 = below)
//	GS h n          1D 68 n         barcode height in dots
//	GS w n          1D 77 n         barcode module width (2-6)
//	GS k m n d...   1D 6B m n d     barcode, function B: m 67 EAN-13
//	                                (12 or 13 digits), m 73 CODE128 (data
//	                                starts with a code set: {A {B {C)
//	GS V 66 n       1D 56 42 n      feed to the cutter plus n dots and
//	                                cut partially (function B)
//
// The decoder also reads the forms a builder of another make might send:
// CR (ignored), GS V 0/1/48/49/65, GS k function A (m 0-6, NUL-terminated),
// ESC ! n (print mode: bold and double width/height bits), GS v 0 raster
// images (skipped, reported as a code of kind IMAGE), DLE EOT n status
// requests (counted), and settings without effect on the text (ESC - 2 3 M
// J G V { R, GS H h w f B L W).
package escpos
