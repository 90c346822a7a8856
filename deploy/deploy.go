package deploy

import (
	"qat/export"
	"qat/infer"
	"qat/layers"
	"qat/model"
	"qat/qmodel"
)

// Freeze freezes the quantized model m, trained on inputs normalised with
// norm, into an int8 model with requantization mode. The model must be
// quantized with every quantizer ready and BN folded; an error about a
// model that has no int8 form wraps export.ErrUnsupported. m is read, not
// changed, and the result shares nothing with it.
func Freeze(m *layers.Model, norm model.Norm, mode qmodel.Requant) (*qmodel.Model, error) {
	src, err := ExportSource(m, norm)
	if err != nil {
		return nil, err
	}
	return export.Freeze(src, mode)
}

// FreezeDynamic freezes m, trained on inputs normalised with norm, with
// its linear layers quantized dynamically (export.FreezeDynamic): from
// the float weights, the input range computed at run time. A quantized
// model's other layers freeze as Freeze freezes them (mode is their
// requantization); a float model (no quantizers) must have linear and
// flatten layers only, and reads its normalised input as floats. m is
// read, not changed, and the result shares nothing with it.
func FreezeDynamic(m *layers.Model, norm model.Norm, mode qmodel.Requant) (*qmodel.Model, error) {
	source := FloatSource
	if m.Quantized() {
		source = ExportSource
	}
	src, err := source(m, norm)
	if err != nil {
		return nil, err
	}
	return export.FreezeDynamic(src, mode)
}

// Int8 is Freeze followed by infer.New: the int8 model and its runtime,
// ready to run (a Runner, a Parallel or infer.Evaluate).
func Int8(m *layers.Model, norm model.Norm, mode qmodel.Requant) (*qmodel.Model, *infer.Net, error) {
	qm, err := Freeze(m, norm, mode)
	if err != nil {
		return nil, nil, err
	}
	net, err := infer.New(qm)
	if err != nil {
		return nil, nil, err
	}
	return qm, net, nil
}
