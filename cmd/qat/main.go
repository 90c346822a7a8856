// Command qat trains neural networks with quantization-aware training and
// evaluates them: float training, QAT fine-tuning, post-training
// calibration and evaluation. Run "qat help" for the manual.
//
// Commands that train or evaluate take --threads, the goroutines they
// use (default: the number of cores); results are bit for bit the same
// for every value.
//
// Exit status: 0 on success, 1 for a run-time error (bad data, a damaged
// checkpoint, a diverging run), 2 for a usage error (an unknown command or
// flag, a bad flag value).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"qat/data"
	"qat/model"
)

// usageError marks an error in how qat was invoked (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes qat with args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "qat: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return 2
	}
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "qat",
		Short: "quantization-aware training in one binary",
		Long: `qat trains a float model, fine-tunes it with fake quantization (QAT) or
calibrates it (PTQ), evaluates the result, exports it as an int8 model and
runs that on its int8 runtime or in onnxruntime, all on MNIST-format data.

Start with "qat demo": the whole loop on the MNIST sample built into the
binary, with plots and a report in runs/demo. A typical session:

  qat train    --model lenet --data mnist --epochs 3 --out runs/lenet/float.safetensors
  qat finetune --from runs/lenet/float.safetensors --bits W8A8 --epochs 1 --out runs/lenet/qat.safetensors
  qat eval     --model runs/lenet/qat.safetensors
  qat export   --checkpoint runs/lenet/qat.safetensors --out runs/lenet/lenet.qmodel
  qat eval     --model runs/lenet/lenet.qmodel --data mnist
  qat compare  --checkpoint runs/lenet/qat.safetensors --model runs/lenet/lenet.qmodel --json
  qat plot     runs/lenet

Experiments: "qat run experiments/04-ptq-vs-qat.json" (see experiments/);
"qat sensitivity" ranks layers by the accuracy lost at low bits.

Data (--data): "embedded" (a 4000/1000-image MNIST sample built into the
binary, the default for train), "mnist" and "fashion-mnist" (fetched into
$QAT_DATA, default ~/.cache/qat, by scripts/fetch-data.sh), or a directory
holding the four idx files.

Checkpoints are safetensors files with PyTorch state_dict names; int8 models
are specified in docs/int8-model.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%s: %w (see qat %s --help)", c.Name(), err, c.Name())}
	})
	models := []*cobra.Command{newDemoCmd(), newTrainCmd(), newFinetuneCmd(), newCalibrateCmd(), newEvalCmd(), newExportCmd(),
		newCompareCmd(), newPlotCmd(), newRunCmd(), newSensitivityCmd(), newImportCmd(), newAutobitsCmd()}
	for _, c := range models {
		addLimitFlags(c)
	}
	root.AddCommand(models...)
	root.AddCommand(newBenchCmd(), newVersionCmd())
	return root
}

// defaultLimits are the packages' size limits as the program starts: the
// flags' defaults, whatever an earlier command of the same process set.
var defaultLimits = struct{ params, acts, dataBytes int64 }{model.MaxParams, model.MaxActivations, data.MaxIDXBytes}

// addLimitFlags gives c, a command that builds models from specs or
// checkpoints, --max-params and --max-activations, which set the size
// limits every spec is checked against before anything is allocated
// (model.MaxParams, model.MaxActivations), and --max-data-bytes, the
// limit of a data split's size (data.MaxIDXBytes).
func addLimitFlags(c *cobra.Command) {
	params, acts := c.Flags().Int64("max-params", defaultLimits.params,
		"refuse models with more parameters than this (checked before anything is allocated)"),
		c.Flags().Int64("max-activations", defaultLimits.acts,
			"refuse models whose one sample produces more activation values than this, summed over the layers")
	dataBytes := c.Flags().Int64("max-data-bytes", defaultLimits.dataBytes, "refuse data splits (idx files, CIFAR-10 batches, image folders) of more pixels than this")
	run := c.RunE
	c.RunE = func(c *cobra.Command, args []string) error {
		if *params < 1 || *acts < 1 || *dataBytes < 1 {
			return usagef("--max-params %d, --max-activations %d, --max-data-bytes %d: want at least 1", *params, *acts, *dataBytes)
		}
		model.MaxParams, model.MaxActivations, data.MaxIDXBytes = *params, *acts, *dataBytes
		return run(c, args)
	}
}

// isCobraUsage recognises cobra's own errors for unknown commands and
// argument counts, which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
