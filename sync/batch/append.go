package batch

// Hand-written core deterministic encoders for the hot payload, the batch:
// sealing and the re-encoding check of every received batch run through
// them instead of reflection. They must write exactly what fxamacker/cbor's
// core deterministic mode writes for the same wire struct (fields in key
// order, shortest heads, omitempty fields left out, a nil slice as null);
// TestAppendBatchMatchesLibrary and the fuzz targets hold them to it.

func appendUint(b []byte, n uint64) []byte { return appendHead(b, 0, n) }

func appendInt(b []byte, n int64) []byte {
	if n >= 0 {
		return appendHead(b, 0, uint64(n))
	}
	return appendHead(b, 1, uint64(-1-n))
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, 3, uint64(len(s))), s...)
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, 0xf6)
	}
	return appendBstr(b, v)
}

func (w *wireBatch) appendCBOR(b []byte) []byte {
	b = w.appendHeader(b)
	if w.Ops == nil {
		return append(b, 0xf6)
	}
	b = appendHead(b, 4, uint64(len(w.Ops)))
	for i := range w.Ops {
		b = w.Ops[i].appendCBOR(b)
	}
	return b
}

// appendHeader writes the batch's map head and every field up to the key
// of the ops (7), which comes last.
func (w *wireBatch) appendHeader(b []byte) []byte {
	n := 4 // terminal, first, last, ops always; the rest when set
	if w.Epoch != 0 {
		n++
	}
	if len(w.Prev) != 0 {
		n++
	}
	if w.RulesVersion != 0 {
		n++
	}
	b = appendHead(b, 5, uint64(n))
	b = appendText(append(b, 1), w.Terminal)
	if w.Epoch != 0 {
		b = appendUint(append(b, 2), uint64(w.Epoch))
	}
	b = appendUint(append(b, 3), w.First)
	b = appendUint(append(b, 4), w.Last)
	if len(w.Prev) != 0 {
		b = appendBstr(append(b, 5), w.Prev)
	}
	if w.RulesVersion != 0 {
		b = appendUint(append(b, 6), uint64(w.RulesVersion))
	}
	return append(b, 7)
}

func (w *wireOp) appendCBOR(b []byte) []byte {
	n := 3 // id, kind, seq
	for _, set := range [...]bool{w.Store != "", w.WallTime != 0, w.HLC != 0, len(w.Card) != 0, w.Member != "",
		w.Points != 0, w.Basket != nil, len(w.Reverses) != 0, w.Reward != "", w.Reason != "", w.Receipt != "",
		w.Cashier != "", w.RulesVersion != 0, w.Offline} {
		if set {
			n++
		}
	}
	b = appendHead(b, 5, uint64(n))
	b = appendBytes(append(b, 1), w.ID)
	b = appendUint(append(b, 2), uint64(w.Kind))
	b = appendUint(append(b, 3), w.Seq)
	if w.Store != "" {
		b = appendText(append(b, 4), w.Store)
	}
	if w.WallTime != 0 {
		b = appendInt(append(b, 5), w.WallTime)
	}
	if w.HLC != 0 {
		b = appendUint(append(b, 6), w.HLC)
	}
	if len(w.Card) != 0 {
		b = appendBstr(append(b, 7), w.Card)
	}
	if w.Member != "" {
		b = appendText(append(b, 8), w.Member)
	}
	if w.Points != 0 {
		b = appendInt(append(b, 9), w.Points)
	}
	if w.Basket != nil {
		b = w.Basket.appendCBOR(append(b, 10))
	}
	if len(w.Reverses) != 0 {
		b = appendBstr(append(b, 11), w.Reverses)
	}
	if w.Reward != "" {
		b = appendText(append(b, 12), w.Reward)
	}
	if w.Reason != "" {
		b = appendText(append(b, 13), w.Reason)
	}
	if w.Receipt != "" {
		b = appendText(append(b, 14), w.Receipt)
	}
	if w.Cashier != "" {
		b = appendText(append(b, 15), w.Cashier)
	}
	if w.RulesVersion != 0 {
		b = appendUint(append(b, 16), uint64(w.RulesVersion))
	}
	if w.Offline {
		b = append(b, 17, 0xf5)
	}
	return b
}

func (w *wireBasket) appendCBOR(b []byte) []byte {
	b = appendText(append(b, 0xa2, 1), w.Currency)
	b = append(b, 2)
	if w.Lines == nil {
		return append(b, 0xf6)
	}
	b = appendHead(b, 4, uint64(len(w.Lines)))
	for _, l := range w.Lines {
		n := 1
		if l.Category != "" {
			n++
		}
		if l.Quantity != 0 {
			n++
		}
		if l.Amount != 0 {
			n++
		}
		b = appendHead(b, 5, uint64(n))
		b = appendText(append(b, 1), l.SKU)
		if l.Category != "" {
			b = appendText(append(b, 2), l.Category)
		}
		if l.Quantity != 0 {
			b = appendInt(append(b, 3), l.Quantity)
		}
		if l.Amount != 0 {
			b = appendInt(append(b, 4), l.Amount)
		}
	}
	return b
}
