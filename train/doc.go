// Package train trains qat models: float training from scratch, QAT
// fine-tuning of a quantized model, post-training calibration (PTQ) and
// evaluation, with optimizers, learning-rate schedules, JSONL metrics,
// progress reports (Progress) and safetensors checkpoints that resume
// exactly.
//
// # Runs
//
// A Trainer owns a layers.Model, an Optimizer over the model's trainable
// params (weights, biases, BN affine params and, once they learn, the
// scales and zero points of learnable quantizers) and two counters: Step,
// the optimizer steps done, and Epoch, the epochs completed. Fit trains
// until Config.Epochs epochs are done; each epoch visits the training set
// in an order drawn from (Config.Seed, epoch) by package data, in batches
// of Config.Batch with a smaller last batch, and ends with an evaluation on
// the test set. A run is deterministic: the same model, config and data
// give the same params bit for bit, and a run saved after an epoch and
// resumed (Checkpoint.Resume) ends exactly where the uninterrupted run
// does (TestResumeIsExact).
//
// # QAT schedule
//
// For a quantized model (layers.Model.Quantize) the training graph
// fake-quantizes the input, every weight and every layer output. Observers
// update on every training step until FreezeObserversStep steps are done;
// BatchNorm uses batch statistics and updates its running statistics until
// FreezeBNStep steps are done, and then normalises with the frozen running
// statistics, as PyTorch's freeze_bn_stats. Learnable (LSQ, LSQ+,
// PACT) quantizers are initialised before the first step from their observers,
// which see CalibrationBatches training batches first. Evaluation always
// runs with every quantizer frozen and BN on running statistics: the
// fake-quant simulation of the int8 model. Calibrate is PTQ: it runs
// batches forward with observers on and freezes them.
//
// # Distillation
//
// A run whose Config.Distill is set distils from a teacher (SetTeacher;
// LoadTeacher reads one): a float model, of any architecture that takes
// the student's input shape and has its class count, never a quantized
// one. Every training step first runs the teacher in eval mode (BN on
// running statistics, no quantization, no gradients) on the step's
// batch, augmented as the student's and normalised as the teacher was
// trained, and the student's loss is Hinton et al.'s (2015)
// (1-alpha)*CE + alpha*T^2*KL(softmax(teacher/T) || softmax(student/T))
// of ops.NewDistillation, the teacher's logits constants. The teacher
// changes nothing but the loss: with alpha 0 a distilling run is the
// plain run bit for bit (TestDistillAlphaZeroIsPlain). The config, with
// the teacher checkpoint's path and content digest, is the run's Config
// and so in every checkpoint; a resumed run must be given the teacher of
// that digest again. Evaluation is the student's alone.
//
// # Threads
//
// Training, calibration and evaluation use layers.Threads() goroutines
// (layers.SetThreads; by default GOMAXPROCS) for the model's ops (conv,
// linear, BatchNorm, the per-channel ops, activations, pooling and fake
// quantization; see the layers package doc). Every result, checkpoints
// included, is bit for bit the same for every thread count
// (TestThreadsAreExact); only samples/s changes. The int8 model's
// evaluation is package infer's (infer.Evaluate).
//
// # Metrics
//
// Fit writes JSON lines to Trainer.Metrics: a StepRecord every
// MetricsEvery steps and at the end of every epoch (the batch's loss and
// accuracy, learning rate, samples/s, the resident memory Trainer.RSS
// reports, for a distilling run the loss's cross-entropy and
// distillation terms and, for a quantized model, every quantizer's
// scale, zero point, MSE, SQNR and clipped fraction on the tensor it
// saw), and an EpochRecord per epoch (mean training loss, its terms when
// distilling, and accuracy, test loss and accuracy, samples/s). Trainer.Progress, if set, is told of every step
// record; package train draws no display and reads no process
// statistics itself.
//
// # Errors
//
// A NaN or infinite loss stops Fit with an error wrapping ErrNonFinite that
// names the step and where the first non-finite value was: a param, or the
// output of the first layer that produced one. Data that does not fit the
// model, an invalid config, and a damaged, truncated or mismatched
// checkpoint are errors naming the file, field or tensor at fault.
//
// # Checkpoints
//
// A checkpoint is a safetensors file: model tensors under PyTorch
// state_dict names (layers.Model.SaveState), optimizer buffers under
// "optimizer.<param>.<buffer>", and metadata: format (qat-checkpoint/2),
// architecture, quant config and quantizer state, step, epoch, input
// normalisation, dataset and the run's Config, and the SHA-256 of all of
// it (safetensors.File.Seal), which loading checks, so that a damaged
// checkpoint is an error. Version 1 files lack the digest and load with a
// warning (Checkpoint.Warnings). Save writes atomically.
package train
