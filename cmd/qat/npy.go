package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	"qat/internal/atomicfile"
)

// writeNPY writes v, a row-major float32 matrix [rows, cols], as a NumPy
// .npy file (format version 1.0, little-endian '<f4', C order),
// atomically (internal/atomicfile): a failure leaves an existing file as
// it was.
func writeNPY(path string, v []float32, rows, cols int) error {
	if rows*cols != len(v) {
		return fmt.Errorf("npy %s: %d values for shape [%d, %d]", path, len(v), rows, cols)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols)
		// magic (6) + version (2) + header length (2) + dict + padding +
		// '\n' is a multiple of 64.
		pad := 64 - (10+len(dict)+1)%64
		if pad == 64 {
			pad = 0
		}
		header := dict + strings.Repeat(" ", pad) + "\n"
		b := make([]byte, 0, 10+len(header)+4*len(v))
		b = append(b, "\x93NUMPY\x01\x00"...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
		b = append(b, header...)
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		_, err := w.Write(b)
		return err
	})
}
