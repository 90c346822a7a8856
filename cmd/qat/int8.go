package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"github.com/spf13/cobra"

	"qat/cheader"
	"qat/data"
	"qat/deploy"
	"qat/infer"
	"qat/internal/atomicfile"
	"qat/layers"
	"qat/model"
	"qat/onnx"
	"qat/qmodel"
	"qat/quant"
	"qat/safetensors"
	"qat/train"
)

// exportCmd is qat export's flags.
type exportCmd struct {
	ckpt, out, requant, header, onnxOut, onnxFormat string
	asJSON, dynamic                                 bool
}

// The values of --onnx-format.
const (
	onnxQLinear = "qlinear"
	onnxQDQ     = "qdq"
	onnxQDQInt4 = "qdq-int4"
)

func newExportCmd() *cobra.Command {
	var e exportCmd
	c := &cobra.Command{
		Use:   "export",
		Short: "freeze a quantized checkpoint into an int8 model file",
		Long: `Freeze a QAT or calibrated checkpoint into an int8 model: BN folded, int8
(or packed 4-bit / 2-bit) weights, int32 biases, requantization multipliers.
The file format is specified in docs/int8-model.md. --requant float (the
default) uses a float32 multiplier per output channel and computes exactly
what the checkpoint's evaluation computes; fixed uses an int32 multiplier
and shift (no float unit needed), within one code of float per layer.
--header also writes the model as a C header of const arrays.

--onnx also writes the int8 model as an ONNX model (QOperator form, opset
13) that onnxruntime runs with the int8 runtime's arithmetic, bit for bit
with --requant float (docs/onnxruntime.md). With a float checkpoint and no
--out, --onnx writes the float model as an ONNX model instead.

--onnx-format qdq writes the int8 model in QDQ form instead: float
operators between QuantizeLinear and DequantizeLinear pairs with the
model's scales, int8 weights and int32 biases through DequantizeLinear
(opset 13), the form TensorRT, OpenVINO and QNN take; onnxruntime computes
it within a few codes of the int8 runtime, not bit for bit. qdq-int4 also
stores weights of 4 bits or fewer as int4 (opset 21). QDQ needs --requant
float.

--dynamic-linear quantizes the linear layers dynamically instead: int8
weights symmetric per output channel from the float weights (no
calibration), each sample's input range computed at run time as
onnxruntime's DynamicQuantizeLinear computes it, float32 outputs and
logits. The convs of a quantized checkpoint stay static int8 (the codes
feeding a linear layer are dequantized first); a float checkpoint must
have only linear and flatten layers, and its model reads the normalised
image as floats. The file is format qat-int8/4; --onnx writes it with
MatMulInteger, which onnxruntime runs bit for bit at any batch size. No
--header or QDQ form.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return e.run(c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&e.ckpt, "checkpoint", "", "checkpoint to export (required): quantized, or float with --onnx and no --out")
	f.StringVar(&e.out, "out", "", "int8 model file to write (required, but for a float checkpoint with --onnx)")
	f.StringVar(&e.requant, "requant", "float", "requantization: float (float32 multiplier) or fixed (int32 multiplier and shift)")
	f.StringVar(&e.header, "header", "", "also write the model as a C header to this file")
	f.StringVar(&e.onnxOut, "onnx", "", "also write the model as ONNX to this file (a float checkpoint: the float model)")
	f.StringVar(&e.onnxFormat, "onnx-format", "", "form of the int8 ONNX model: qlinear (QOperator, the default; bit-exact with --requant float), qdq (QuantizeLinear/DequantizeLinear, opset 13) or qdq-int4 (qdq with int4 weights, opset 21)")
	f.BoolVar(&e.dynamic, "dynamic-linear", false, "quantize the linear layers dynamically: int8 weights from the float weights, input ranges at run time, float outputs (a float checkpoint: linear and flatten layers only)")
	f.BoolVar(&e.asJSON, "json", false, "print the result as JSON")
	return c
}

// check validates the flags and returns the requantization mode.
func (e *exportCmd) check() (qmodel.Requant, error) {
	if e.ckpt == "" || (e.out == "" && e.onnxOut == "") {
		return "", usagef("--checkpoint and --out are required (or --onnx alone, for a float checkpoint)")
	}
	if err := distinct([]pathFlag{{"--checkpoint", e.ckpt}},
		[]pathFlag{{"--out", e.out}, {"--header", e.header}, {"--onnx", e.onnxOut}}); err != nil {
		return "", err
	}
	mode := qmodel.Requant(e.requant)
	if mode != qmodel.RequantFloat && mode != qmodel.RequantFixed {
		return "", usagef("--requant %q: want float or fixed", e.requant)
	}
	switch e.onnxFormat {
	case "", onnxQLinear, onnxQDQ, onnxQDQInt4:
	default:
		return "", usagef("--onnx-format %q: want %s, %s or %s", e.onnxFormat, onnxQLinear, onnxQDQ, onnxQDQInt4)
	}
	if e.onnxFormat != "" && e.onnxOut == "" {
		return "", usagef("--onnx-format needs --onnx")
	}
	if e.qdq() && mode != qmodel.RequantFloat {
		return "", usagef("--onnx-format %s needs --requant float: a QDQ graph requantizes by its scales in float and cannot carry %s requantization", e.onnxFormat, mode)
	}
	switch {
	case !e.dynamic:
	case e.out == "":
		return "", usagef("--dynamic-linear needs --out: it writes an int8 model")
	case e.header != "":
		return "", usagef("--dynamic-linear and --header exclude each other: the C header has no dynamically quantized ops")
	case e.qdq():
		return "", usagef("--dynamic-linear and --onnx-format %s exclude each other: a QDQ graph holds static quantization only", e.onnxFormat)
	}
	return mode, nil
}

// qdq reports whether --onnx-format asks for a QDQ model.
func (e *exportCmd) qdq() bool { return e.onnxFormat == onnxQDQ || e.onnxFormat == onnxQDQInt4 }

// run exports the checkpoint.
func (e *exportCmd) run(w io.Writer) error {
	mode, err := e.check()
	if err != nil {
		return err
	}
	ck, err := loadCheckpoint(e.ckpt)
	if err != nil {
		return err
	}
	if e.out == "" {
		if ck.Model.Quantized() {
			return usagef("--out is required: %s is a quantized checkpoint", e.ckpt)
		}
		if e.header != "" {
			return usagef("--header needs an int8 model: %s is a float checkpoint", e.ckpt)
		}
		if e.onnxFormat != "" {
			return usagef("--onnx-format %s needs an int8 model: %s is a float checkpoint", e.onnxFormat, e.ckpt)
		}
		return exportFloatONNX(w, e.asJSON, e.ckpt, e.onnxOut, ck, ck.Norm)
	}
	freeze := deploy.Freeze
	if e.dynamic {
		freeze = deploy.FreezeDynamic
	}
	m, err := freeze(ck.Model, ck.Norm, mode)
	if err != nil {
		return fmt.Errorf("export %s: %w", e.ckpt, err)
	}
	if e.onnxFormat == onnxQDQInt4 && len(int4Layers(m)) == 0 {
		return usagef("--onnx-format %s: %s has no weights of 4 bits or fewer (use %s)", onnxQDQInt4, e.ckpt, onnxQDQ)
	}
	if err := e.write(m); err != nil {
		return err
	}
	return e.report(w, ck, m)
}

// int4Layers returns the names of m's conv and linear ops with weights of
// 4 bits or fewer, which --onnx-format qdq-int4 stores as int4.
func int4Layers(m *qmodel.Model) []string {
	names := []string{}
	for i := range m.Ops {
		if op := &m.Ops[i]; op.Weight != nil && op.WeightBits <= 4 {
			names = append(names, op.Name)
		}
	}
	return names
}

// write writes the int8 model and the header and ONNX file asked for, all
// or nothing: they are renamed into place only when all are complete.
func (e *exportCmd) write(m *qmodel.Model) error {
	var files atomicfile.Files
	files.Add(e.out, func(w io.Writer) error { return qmodel.Write(w, m) })
	if e.header != "" {
		files.Add(e.header, func(w io.Writer) error { return cheader.Write(w, m, "") })
	}
	if e.onnxOut != "" {
		var ob []byte
		var err error
		if e.qdq() {
			ob, err = onnx.FromInt8QDQ(m, onnx.QDQOptions{Int4Weights: e.onnxFormat == onnxQDQInt4})
		} else {
			ob, err = onnx.FromInt8(m)
		}
		if err != nil {
			return fmt.Errorf("export %s: %w", e.ckpt, err)
		}
		files.Add(e.onnxOut, func(w io.Writer) error { _, err := w.Write(ob); return err })
	}
	return files.Commit()
}

// exportFloatONNX writes the float model of checkpoint ck (path ckpt) as
// an ONNX model to path and reports it.
func exportFloatONNX(w io.Writer, asJSON bool, ckpt, path string, ck *train.Checkpoint, norm model.Norm) error {
	src, err := deploy.FloatSource(ck.Model, norm)
	if err != nil {
		return fmt.Errorf("export %s: %w", ckpt, err)
	}
	b, err := onnx.FromFloat(src)
	if err != nil {
		return fmt.Errorf("export %s: %w", ckpt, err)
	}
	if err := atomicfile.WriteBytes(path, b); err != nil {
		return err
	}
	res := map[string]any{"checkpoint": ckpt, "onnx": path, "onnx_bytes": len(b), "onnx_model": "float", "layers": len(src.Layers)}
	if asJSON {
		return printJSON(w, res)
	}
	_, err = fmt.Fprintf(w, "%s: float ONNX model of %s, %d layers, %d bytes\n", path, ckpt, len(src.Layers), len(b))
	return err
}

// report prints what run exported from checkpoint ck: the int8 model m
// and the files written.
func (e *exportCmd) report(w io.Writer, ck *train.Checkpoint, m *qmodel.Model) error {
	asJSON, ckpt, out, header, onnxOut := e.asJSON, e.ckpt, e.out, e.header, e.onnxOut
	size := func(p string) int64 {
		st, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	outBytes, ckBytes := size(out), size(ckpt)
	var weights, floatWeights int
	bits := map[int]int{}
	dynamic := []string{}
	for _, op := range m.Ops {
		if op.Weight == nil {
			continue
		}
		weights += len(op.Weight)
		if op.Type == qmodel.OpDynamicLinear {
			bits[8]++
			dynamic = append(dynamic, op.Name)
		} else {
			bits[op.WeightBits]++
		}
	}
	for _, p := range ck.Model.Params() {
		if !p.Quantizer {
			floatWeights += 4 * len(p.Data)
		}
	}
	res := map[string]any{
		"checkpoint": ckpt, "model": out, "requant": m.Requant, "ops": len(m.Ops), "weights": weights,
		"bytes": outBytes, "checkpoint_bytes": ckBytes, "size_ratio": float64(outBytes) / float64(ckBytes),
		"float_param_bytes": floatWeights, "param_size_ratio": float64(outBytes) / float64(floatWeights),
	}
	if header != "" {
		res["header"] = header
	}
	outputs := "codes"
	if e.dynamic {
		res["dynamic_linear"], res["format"] = dynamic, m.FormatVersion()
		outputs = "float logits"
	}
	var inexact string
	form, opset := "QOperator", onnx.Opset
	if e.dynamic {
		form = "QOperator, dynamic MatMulInteger"
	}
	if onnxOut != "" {
		res["onnx"], res["onnx_bytes"], res["onnx_model"] = onnxOut, size(onnxOut), "int8"
		switch {
		case e.qdq():
			inexact, form = onnx.QDQInexact, "QDQ"
			res["onnx_format"] = e.onnxFormat
			if e.onnxFormat == onnxQDQInt4 {
				opset = onnx.OpsetInt4
				res["onnx_int4_weights"] = int4Layers(m)
			}
		default:
			inexact = onnx.Exactness(m)
			res["onnx_format"] = onnxQLinear
			u8 := []string{}
			for i := range m.Ops {
				if op := &m.Ops[i]; op.Weight != nil && onnx.WeightEncodingOf(op.Weight) == onnx.WeightsUint8 {
					u8 = append(u8, op.Name)
				}
			}
			res["onnx_uint8_weights"] = u8
		}
		res["onnx_opset"] = opset
		res["onnx_exact"] = inexact == ""
		if inexact != "" {
			res["onnx_inexact"] = inexact
		}
	}
	if asJSON {
		return printJSON(w, res)
	}
	_, err := fmt.Fprintf(w, "%s: %d ops, %d weights (%v layers by weight bits), %d bytes: %.3fx the checkpoint (%d bytes), %.3fx its float32 params (%d bytes)\n",
		out, len(m.Ops), weights, bits, outBytes, res["size_ratio"], ckBytes, res["param_size_ratio"], floatWeights)
	if err == nil && e.dynamic {
		_, err = fmt.Fprintf(w, "%s: dynamic linear layers %v (format %s)\n", out, dynamic, m.FormatVersion())
	}
	if err == nil && onnxOut != "" {
		exact := "computes the int8 model's " + outputs + " bit for bit in onnxruntime"
		if inexact != "" {
			exact = "NOT bit-exact with the int8 model: " + inexact
		}
		_, err = fmt.Fprintf(w, "%s: ONNX model (%s, opset %d), %d bytes, %s\n", onnxOut, form, opset, res["onnx_bytes"], exact)
	}
	return err
}

// loadAny reads path as an int8 model or a checkpoint.
func loadAny(path string) (*qmodel.Model, *train.Checkpoint, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if qmodel.IsModelFile(f) {
		m, err := qmodel.FromFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		warn(path, m.Warnings)
		return m, nil, nil
	}
	ck, err := train.FromFile(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	warn(path, ck.Warnings)
	return nil, ck, nil
}

// loadCheckpoint is train.LoadCheckpoint, printing its warnings.
func loadCheckpoint(path string) (*train.Checkpoint, error) {
	ck, err := train.LoadCheckpoint(path)
	if err == nil {
		warn(path, ck.Warnings)
	}
	return ck, err
}

// readModel is qmodel.ReadFile, printing its warnings.
func readModel(path string) (*qmodel.Model, error) {
	m, err := qmodel.ReadFile(path)
	if err == nil {
		warn(path, m.Warnings)
	}
	return m, err
}

// warn prints what a reader noticed about the file at path without
// rejecting it (an old format without checksum) to standard error.
func warn(path string, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "qat: warning: %s: %s\n", path, w)
	}
}

// compareCmd is qat compare's flags.
type compareCmd struct {
	d           dataFlags
	ckpt, model string
	batch       int
	asJSON      bool
	threads     threadsFlag
}

func newCompareCmd() *cobra.Command {
	var p compareCmd
	c := &cobra.Command{
		Use:   "compare",
		Short: "compare an int8 model with the checkpoint it was exported from",
		Long: `Run the checkpoint's evaluation and the int8 model on the same test images and
compare their outputs as codes of the model's output quantization: n, the
fraction of samples whose argmax agrees, the largest difference in codes
(LSB), and the fraction of samples whose every output code is equal.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return p.run(c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&p.ckpt, "checkpoint", "", "quantized checkpoint (required)")
	f.StringVar(&p.model, "model", "", "int8 model exported from it (required)")
	f.IntVar(&p.batch, "batch", 250, "batch size")
	f.BoolVar(&p.asJSON, "json", false, "print the comparison as JSON")
	f.StringVar(&p.d.spec, "data", "", dataHelp+" (default: the checkpoint's)")
	f.IntVar(&p.d.limit, "limit", 0, "compare only the first N test images (0: all)")
	p.threads.add(c)
	return c
}

// load checks the flags and reads the int8 model, the checkpoint it must
// have been exported from and the test images.
func (p *compareCmd) load() (*qmodel.Model, *train.Checkpoint, *data.Dataset, error) {
	switch {
	case p.ckpt == "" || p.model == "":
		return nil, nil, nil, usagef("--checkpoint and --model are required")
	case p.batch < 1:
		return nil, nil, nil, usagef("--batch %d: want at least 1", p.batch)
	case p.d.limit < 0:
		return nil, nil, nil, usagef("--limit %d is negative", p.d.limit)
	}
	if err := p.threads.apply(); err != nil {
		return nil, nil, nil, err
	}
	m, err := readModel(p.model)
	if err != nil {
		return nil, nil, nil, err
	}
	if m.Dynamic() {
		return nil, nil, nil, fmt.Errorf("%s is quantized dynamically (format %s): compare takes a static int8 model, whose codes the checkpoint's evaluation computes", p.model, m.FormatVersion())
	}
	ck, err := loadCheckpoint(p.ckpt)
	if err != nil {
		return nil, nil, nil, err
	}
	spec, err := p.d.required(ck.Dataset, p.ckpt)
	if err != nil {
		return nil, nil, nil, err
	}
	_, te, _, err := datasets(spec, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	if p.d.limit > 0 {
		te = te.Limit(p.d.limit)
	}
	if !m.Norm.Equal(ck.Norm) {
		return nil, nil, nil, fmt.Errorf("%s normalises with %+v, %s with %+v: not exported from it", p.model, m.Norm, p.ckpt, ck.Norm)
	}
	if err := exportedFrom(m, ck); err != nil {
		return nil, nil, nil, fmt.Errorf("%s was not exported from %s: %w", p.model, p.ckpt, err)
	}
	return m, ck, te, nil
}

// run compares the int8 model's output codes with the checkpoint's.
func (p *compareCmd) run(w io.Writer) error {
	m, ck, te, err := p.load()
	if err != nil {
		return err
	}
	net, err := infer.New(m)
	if err != nil {
		return err
	}
	ir, err := infer.Evaluate(net, te.Images, te.Labels, infer.EvalConfig{Batch: p.batch, Threads: layers.Threads(), KeepCodes: true})
	if err != nil {
		return err
	}
	fr, err := train.Evaluate(ck.Model, te, train.EvalConfig{Batch: p.batch, Norm: ck.Norm, KeepLogits: true})
	if err != nil {
		return err
	}
	cmp, err := compareCodes(fr.Logits, ir.Codes, net.Classes(), net.OutputQuant())
	if err != nil {
		return err
	}
	if p.asJSON {
		return printJSON(w, cmp)
	}
	_, err = fmt.Fprintf(w, "%d samples: argmax agreement %.4f%%, max |diff| %d LSB, exact %.4f%% (checkpoint %.2f%%, int8 %.2f%%)\n",
		cmp.N, 100*cmp.ArgmaxAgreement, cmp.MaxAbsDiffLSB, 100*cmp.ExactFraction, 100*fr.Accuracy, 100*ir.Accuracy)
	return err
}

// comparison is the agreement of a checkpoint's outputs with an int8
// model's.
type comparison struct {
	N               int     `json:"n"`
	ArgmaxAgreement float64 `json:"argmax_agreement"`
	MaxAbsDiffLSB   int     `json:"max_abs_diff_lsb"`
	ExactFraction   float64 `json:"exact_fraction"`
}

// compareCodes quantizes the checkpoint's logits with the int8 model's
// output quantization q and compares them with its output codes.
func compareCodes(logits []float32, codes []uint8, classes int, q qmodel.Quant) (comparison, error) {
	if len(logits) != len(codes) {
		return comparison{}, errors.New("compare: the checkpoint and the model produced different output counts")
	}
	n := len(codes) / classes
	cmp := comparison{N: n}
	inv := 1 / q.Scale
	var agree, exact int
	for i := range n {
		var diff int
		fa, ca := 0, 0
		for j := range classes {
			f, _ := quant.Code(logits[i*classes+j], inv, q.ZeroPoint, q.QMin, q.QMax)
			c := int32(codes[i*classes+j])
			diff = max(diff, int(max(f-c, c-f)))
			if logits[i*classes+j] > logits[i*classes+fa] {
				fa = j
			}
			if codes[i*classes+j] > codes[i*classes+ca] {
				ca = j
			}
		}
		if fa == ca {
			agree++
		}
		if diff == 0 {
			exact++
		}
		cmp.MaxAbsDiffLSB = max(cmp.MaxAbsDiffLSB, diff)
	}
	if n > 0 {
		cmp.ArgmaxAgreement = float64(agree) / float64(n)
		cmp.ExactFraction = float64(exact) / float64(n)
	}
	return cmp, nil
}

// exportedFrom checks that m is what exporting ck with m's requantization
// mode gives: the same ops with the same weights, scales and multipliers.
func exportedFrom(m *qmodel.Model, ck *train.Checkpoint) error {
	if !ck.Model.Quantized() {
		return errors.New("the checkpoint is a float model (compare takes the quantized checkpoint an int8 model was exported from)")
	}
	want, err := deploy.Freeze(ck.Model, m.Norm, m.Requant)
	if err != nil {
		return err
	}
	if len(want.Ops) != len(m.Ops) {
		return fmt.Errorf("it has %d ops, the checkpoint's export %d", len(m.Ops), len(want.Ops))
	}
	for i := range m.Ops {
		if !reflect.DeepEqual(m.Ops[i], want.Ops[i]) {
			return fmt.Errorf("op %d (%s %s) differs from the checkpoint's export", i, m.Ops[i].Type, m.Ops[i].Name)
		}
	}
	if m.InputQuant != want.InputQuant {
		return fmt.Errorf("its input quantization %+v is not the checkpoint's %+v", m.InputQuant, want.InputQuant)
	}
	return nil
}
