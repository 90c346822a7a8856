package train

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"qat/layers"
)

// StepRecord is the JSONL record of a training step ("type":"step"):
// the batch's loss and accuracy, the learning rate used, the samples/s
// since the previous record and, for a quantized model, every
// quantizer's state and error on the tensor it saw in this step.
type StepRecord struct {
	Type  string  `json:"type"`
	Step  int64   `json:"step"`
	Epoch int     `json:"epoch"`
	Loss  float64 `json:"loss"`
	// LossCE and LossKD are the cross-entropy and distillation terms of
	// a distilling run's Loss, (1-alpha)*LossCE + alpha*LossKD (see
	// DistillConfig); absent in other runs.
	LossCE        *float64 `json:"loss_ce,omitempty"`
	LossKD        *float64 `json:"loss_kd,omitempty"`
	LR            float64  `json:"lr"`
	Accuracy      float64  `json:"accuracy"`
	SamplesPerSec float64  `json:"samples_per_sec"`
	// RSSMB is the process's resident memory in MiB as Trainer.RSS
	// reports it when the record is written; absent without Trainer.RSS
	// or when it reports 0 (cmd/qat's reader: not Linux).
	RSSMB float64       `json:"rss_mb,omitempty"`
	Quant []QuantRecord `json:"quant,omitempty"`
}

// EpochRecord is the JSONL record of a finished epoch ("type":"epoch"):
// mean training loss and accuracy over the epoch, and the evaluation on
// the test set (absent without one).
type EpochRecord struct {
	Type      string  `json:"type"`
	Epoch     int     `json:"epoch"`
	Step      int64   `json:"step"`
	TrainLoss float64 `json:"train_loss"`
	// TrainLossCE and TrainLossKD are the epoch's means of
	// StepRecord.LossCE and LossKD; absent except in distilling runs.
	TrainLossCE   *float64 `json:"train_loss_ce,omitempty"`
	TrainLossKD   *float64 `json:"train_loss_kd,omitempty"`
	TrainAccuracy float64  `json:"train_accuracy"`
	ValLoss       *float64 `json:"val_loss,omitempty"`
	ValAccuracy   *float64 `json:"val_accuracy,omitempty"`
	ValN          int      `json:"val_n,omitempty"`
	SamplesPerSec float64  `json:"samples_per_sec"`
}

// QuantRecord is one quantizer in a StepRecord. SQNR is in dB, null when
// the error is zero (+Inf); Clipped is the fraction of elements that
// saturated.
type QuantRecord struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Scale     []float32 `json:"scale"`
	ZeroPoint []int32   `json:"zero_point"`
	MSE       float64   `json:"mse"`
	SQNR      *float64  `json:"sqnr_db"`
	MaxAbs    float64   `json:"max_abs_error"`
	Clipped   float64   `json:"clipped"`
}

func quantRecords(stats []layers.QuantStat) []QuantRecord {
	out := make([]QuantRecord, len(stats))
	for i, s := range stats {
		r := QuantRecord{Name: s.Name, Role: s.Role, Scale: s.Scale, ZeroPoint: s.ZeroPoint,
			MSE: s.MSE, MaxAbs: s.MaxAbs, Clipped: s.Clipped}
		if !math.IsInf(s.SQNR, 0) && !math.IsNaN(s.SQNR) {
			v := s.SQNR
			r.SQNR = &v
		}
		out[i] = r
	}
	return out
}

// metricsWriter writes one JSON object per line; a nil writer discards.
type metricsWriter struct {
	enc *json.Encoder
}

func newMetricsWriter(w io.Writer) *metricsWriter {
	if w == nil {
		return &metricsWriter{}
	}
	return &metricsWriter{enc: json.NewEncoder(w)}
}

func (m *metricsWriter) write(v any) error {
	if m.enc == nil {
		return nil
	}
	if err := m.enc.Encode(v); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}
