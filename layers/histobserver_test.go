package layers

import (
	"testing"

	"qat/quant"
)

// A weight spec naming a histogram observer gets one histogram per output
// channel, since the weights' default scheme is per channel (axis 0);
// activation and input specs get the per-tensor histogram.
func TestHistogramObserverSpecs(t *testing.T) {
	qc, err := ParseQuantConfig([]byte(`{"weight":{"bits":4,"observer":"mse"},"act":{"observer":"entropy"}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := newLeNet(t)
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	for _, q := range m.Quantizers() {
		obs := q.FQ.Observer()
		switch o := obs.(type) {
		case *quant.HistogramPerChannel:
			if q.Role != RoleWeight || !o.Scheme().PerChannel || o.Scheme().Axis != 0 {
				t.Errorf("%s (%s): per-channel histogram of scheme %v", q.Name, q.Role, o.Scheme())
			}
		case *quant.Histogram:
			if q.Role == RoleWeight || o.Kind() != quant.KindEntropy {
				t.Errorf("%s (%s): per-tensor %s histogram", q.Name, q.Role, o.Kind())
			}
		default:
			t.Errorf("%s (%s): observer %T", q.Name, q.Role, obs)
		}
	}
}
