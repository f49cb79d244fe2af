package receipt

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"unicode/utf8"

	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/font/inconsolata"
	"rsc.io/qr"

	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// Preview geometry: one column of font A is a glyph of the 8x16 bitmap
// font; the paper has a margin on each side; a QR module is qrModulePx
// pixels with the standard quiet zone of four modules.
const (
	glyphW     = 8
	glyphH     = 18
	marginPx   = 16
	qrModulePx = 4
	qrQuiet    = 4
)

// Image renders the block as a grayscale picture of the printed roll:
// Inconsolata 8x16 bitmap glyphs on 8x18 cells (bold where the block is bold, doubled
// where it is large or tall) and the QR code drawn module by module. A
// character the font lacks is drawn as its escpos.Fallback.
func (b Block) Image(width int) (*image.Gray, error) {
	width = clampWidth(width)
	lines := b.lines(width, fontPrintable)
	codes := make(map[string]*qr.Code)
	h := marginPx
	for _, l := range lines {
		if l.qr != "" {
			c, err := qr.Encode(l.qr, qr.M)
			if err != nil {
				return nil, fmt.Errorf("receipt: draw QR code of %d bytes: %w", len(l.qr), err)
			}
			codes[l.qr] = c
			h += (c.Size + 2*qrQuiet) * qrModulePx
			continue
		}
		h += glyphH * lineHeight(l)
	}
	h += marginPx
	w := width*glyphW + 2*marginPx
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	y := marginPx
	for _, l := range lines {
		if l.qr != "" {
			c := codes[l.qr]
			side := (c.Size + 2*qrQuiet) * qrModulePx
			x := marginPx + alignOffset(l.align, width*glyphW, side)
			drawQR(img, c, x+qrQuiet*qrModulePx, y+qrQuiet*qrModulePx)
			y += side
			continue
		}
		scaleX, scaleY := l.mult(), lineHeight(l)
		used := utf8.RuneCountInString(l.text) * glyphW * scaleX
		x := marginPx + alignOffset(l.align, width*glyphW, used)
		face := inconsolata.Regular8x16
		if l.bold {
			face = inconsolata.Bold8x16
		}
		for _, r := range l.text {
			drawGlyph(img, face, r, x, y, scaleX, scaleY)
			x += glyphW * scaleX
		}
		y += glyphH * scaleY
	}
	return img, nil
}

// PNG renders the block as a PNG image of the printed roll (see Image).
func (b Block) PNG(width int) ([]byte, error) {
	img, err := b.Image(width)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("receipt: encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

func lineHeight(l line) int {
	if l.large || l.tall {
		return 2
	}
	return 1
}

func alignOffset(a escpos.Align, avail, used int) int {
	switch a {
	case escpos.Center:
		return max(0, (avail-used)/2)
	case escpos.Right:
		return max(0, avail-used)
	}
	return 0
}

// fontPrintable replaces the characters the bitmap font lacks.
func fontPrintable(s string) string {
	for _, r := range s {
		if !hasGlyph(r) {
			return replaceMissing(s)
		}
	}
	return s
}

func replaceMissing(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if hasGlyph(r) {
			out = append(out, r)
			continue
		}
		out = append(out, []rune(escpos.Fallback(r))...)
	}
	return string(out)
}

func hasGlyph(r rune) bool {
	for _, rg := range inconsolata.Regular8x16.Ranges {
		if rg.Low <= r && r < rg.High {
			return true
		}
	}
	return false
}

// drawGlyph draws r's glyph from a basicfont face with its top-left at
// (x, y), each pixel scaled sx by sy, darkening by the glyph's coverage.
func drawGlyph(img *image.Gray, face *basicfont.Face, r rune, x, y, sx, sy int) {
	index := -1
	for _, rg := range face.Ranges {
		if rg.Low <= r && r < rg.High {
			index = int(r-rg.Low) + rg.Offset
			break
		}
	}
	if index < 0 {
		return
	}
	cellH := face.Ascent + face.Descent
	top := (glyphH - cellH) / 2
	for gy := 0; gy < cellH; gy++ {
		for gx := 0; gx < face.Width; gx++ {
			a := face.Mask.At(gx, index*cellH+gy)
			_, _, _, alpha := a.RGBA()
			if alpha == 0 {
				continue
			}
			v := uint8(0xff - alpha>>8)
			for dy := 0; dy < sy; dy++ {
				for dx := 0; dx < sx; dx++ {
					px, py := x+gx*sx+dx, y+(top+gy)*sy+dy
					if image.Pt(px, py).In(img.Rect) && v < img.GrayAt(px, py).Y {
						img.SetGray(px, py, color.Gray{Y: v})
					}
				}
			}
		}
	}
}

func drawQR(img *image.Gray, c *qr.Code, x0, y0 int) {
	for my := 0; my < c.Size; my++ {
		for mx := 0; mx < c.Size; mx++ {
			if !c.Black(mx, my) {
				continue
			}
			for dy := 0; dy < qrModulePx; dy++ {
				off := img.PixOffset(x0+mx*qrModulePx, y0+my*qrModulePx+dy)
				for dx := 0; dx < qrModulePx; dx++ {
					img.Pix[off+dx] = 0
				}
			}
		}
	}
}
