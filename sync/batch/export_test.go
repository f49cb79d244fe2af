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
