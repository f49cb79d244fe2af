package batch

// SealRaw signs any payload with any content type and kid: the tests and
// fuzz targets use it to build signed messages this package would refuse
// to seal.
func (s *Signer) SealRaw(ct string, kid KeyID, payload []byte) ([]byte, error) {
	return s.seal(ct, kid, payload)
}

// Payload returns an envelope's payload bytes.
func (e *Envelope) Payload() []byte { return e.payload }

// Bytes returns the kid's encoding.
func (k KeyID) Bytes() []byte {
	b, err := k.marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// LibraryEncodeBatch encodes a batch payload through fxamacker/cbor's
// reflection encoder, and HandEncodeBatch through ours: they must agree.
func LibraryEncodeBatch(payload []byte) (lib, hand []byte, err error) {
	var w wireBatch
	if err := batchDecMode.Unmarshal(payload, &w); err != nil {
		return nil, nil, err
	}
	lib, err = encMode.Marshal(&w)
	return lib, w.appendCBOR(nil), err
}
