package devices

// Symbology is a barcode's type, as UnifiedPOS's ScanDataType.
type Symbology uint8

const (
	SymUnknown Symbology = iota
	SymEAN13
	SymEAN8
	SymUPCA
	SymUPCE
	SymCode128
	SymGS1_128
	SymCode39
	SymITF
	SymCodabar
	SymCode93
	SymQR
	SymGS1QR
	SymDataMatrix
	SymGS1DataMatrix
	SymPDF417
	SymAztec
	SymGS1DataBar
)

func (s Symbology) String() string {
	switch s {
	case SymEAN13:
		return "EAN-13"
	case SymEAN8:
		return "EAN-8"
	case SymUPCA:
		return "UPC-A"
	case SymUPCE:
		return "UPC-E"
	case SymCode128:
		return "Code 128"
	case SymGS1_128:
		return "GS1-128"
	case SymCode39:
		return "Code 39"
	case SymITF:
		return "ITF"
	case SymCodabar:
		return "Codabar"
	case SymCode93:
		return "Code 93"
	case SymQR:
		return "QR"
	case SymGS1QR:
		return "GS1 QR"
	case SymDataMatrix:
		return "Data Matrix"
	case SymGS1DataMatrix:
		return "GS1 Data Matrix"
	case SymPDF417:
		return "PDF417"
	case SymAztec:
		return "Aztec"
	case SymGS1DataBar:
		return "GS1 DataBar"
	}
	return "unknown"
}

// GS1 reports whether the symbology carries GS1 element strings
// (application identifiers with FNC1 as the group separator).
func (s Symbology) GS1() bool {
	switch s {
	case SymGS1_128, SymGS1QR, SymGS1DataMatrix, SymGS1DataBar:
		return true
	}
	return false
}
