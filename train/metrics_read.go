package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadMetrics decodes a JSONL metrics stream as the trainer writes it:
// one "step" or "epoch" record per line, in file order. Decoding is
// strict: an unknown field or record type, trailing data after a record,
// or a line that is not a whole JSON object (a corrupt or truncated
// line) is an error naming the line. Blank lines are skipped.
func ReadMetrics(r io.Reader) (steps []StepRecord, epochs []EpochRecord, err error) {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, nil, fmt.Errorf("metrics line %d: %w", n, rerr)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var head struct {
				Type string `json:"type"`
			}
			// Unmarshal checks that the line is exactly one JSON value.
			if err := json.Unmarshal(line, &head); err != nil {
				return nil, nil, fmt.Errorf("metrics line %d: %w", n, err)
			}
			switch head.Type {
			case "step":
				var s StepRecord
				if err := decodeStrict(line, &s); err != nil {
					return nil, nil, fmt.Errorf("metrics line %d: step record: %w", n, err)
				}
				steps = append(steps, s)
			case "epoch":
				var e EpochRecord
				if err := decodeStrict(line, &e); err != nil {
					return nil, nil, fmt.Errorf("metrics line %d: epoch record: %w", n, err)
				}
				epochs = append(epochs, e)
			default:
				return nil, nil, fmt.Errorf("metrics line %d: unknown record type %q", n, head.Type)
			}
		}
		if rerr != nil {
			return steps, epochs, nil
		}
	}
}

// decodeStrict decodes the JSON object in line into v, rejecting unknown
// fields.
func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// ReadMetricsFile reads a JSONL metrics file with ReadMetrics; errors
// name the file.
func ReadMetricsFile(path string) (steps []StepRecord, epochs []EpochRecord, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	if steps, epochs, err = ReadMetrics(f); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return steps, epochs, nil
}
