/* ResoMap's C ABI over libtorch. Kept deliberately small: everything that is
 * not numerics (data, schedules, checkpoints, orchestration) lives in Go.
 * Bump RM_ABI_VERSION on any change to a signature below; the Go loader
 * refuses a library whose version differs. */
#ifndef RESOMAP_H
#define RESOMAP_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

#define RM_ABI_VERSION 6

/* Status codes returned by every call that can fail. */
#define RM_OK 0
#define RM_ERR 1     /* any other C++ exception; see rm_last_error */
#define RM_OOM 2     /* std::bad_alloc or a (CUDA) out-of-memory error */
#define RM_INVALID 3 /* bad argument (unknown model, wrong size, ...) */

/* Tensor element types used by rm_state_info. */
#define RM_F32 0
#define RM_F64 1
#define RM_I64 2
#define RM_BF16 3
#define RM_F16 4
#define RM_I32 5
#define RM_U8 6

typedef struct rm_model rm_model;

int32_t rm_abi_version(void);
/* Message of the last failed call on this OS thread. */
const char *rm_last_error(void);
const char *rm_torch_version(void);
/* The names of the models the bridge builds, comma-separated (6). */
const char *rm_model_names(void);
int32_t rm_set_threads(int32_t n);
int32_t rm_get_threads(void);
int32_t rm_cuda_device_count(void);

/* Everything rm_model_new needs. size is sizeof(rm_model_options) as the
 * caller compiled it: a library refuses a struct smaller than its own, so
 * fields can be added at the end without a silent mismatch. */
typedef struct rm_model_options {
  uint64_t size;
  const char *name;   /* "resnet18", "vgg11_bn", ... */
  const char *device; /* "cpu", "cuda", "cuda:1", ... */
  uint64_t init_seed;
  const float *mean; /* per-channel normalisation applied to uint8 inputs */
  const float *std;  /* (/255 first); in_channels values each */
  double momentum, weight_decay, beta1, beta2, eps;
  int32_t in_channels, num_classes;
  int32_t optimizer; /* 0 = SGD, 1 = AdamW */
  int32_t nesterov, mixed_precision, channels_last; /* 0 or 1 */
  int32_t image_size; /* the resolution it trains at: a ViT sizes its position embedding by it */
  const char *script_path; /* a TorchScript model's file (NULL or "": the built-in model name) */
} rm_model_options;

int32_t rm_model_new(const rm_model_options *opts, rm_model **out);
void rm_model_free(rm_model *m);
/* Seeds the model's own generator (dropout); the trainer seeds it before
 * every step from the step's coordinates. */
int32_t rm_model_seed(rm_model *m, uint64_t seed);

void rm_zero_grad(rm_model *m);
/* Forward and backward of one micro-batch (uint8 NCHW images, int64 labels);
 * the loss is scaled by loss_scale before backward so micro-batches can be
 * accumulated into one effective batch. Writes the summed (unscaled) loss and
 * the count of correct predictions. */
int32_t rm_forward_backward(rm_model *m, const uint8_t *images, const int64_t *labels,
                            int64_t n, int32_t c, int32_t h, int32_t w, double loss_scale,
                            double label_smoothing, double *loss_sum, int64_t *correct);
/* Steps the optimiser and drops the gradients it consumed (SGD builds its
 * update in them): between steps a model holds no gradients. */
int32_t rm_optimizer_step(rm_model *m, double lr);
/* Fine-tuning: every parameter whose name does not start with keep_prefix
 * (the classifier's) steps at lr * scale from now on; 0 freezes it (no
 * update, no momentum, no weight decay), as requires_grad=False does. */
int32_t rm_set_lr_scale(rm_model *m, const char *keep_prefix, double scale);

/* The training loop's path, which never waits for the device inside a step:
 * rm_stage_batch copies a batch to the device (through pinned memory, without
 * blocking, on CUDA) so the next step's upload overlaps this step's compute;
 * rm_forward_backward_staged trains on images [lo, hi) of the staged batch
 * and keeps its loss and correct count on the device; rm_take_metrics waits
 * for them and hands over one (loss sum, correct) pair per micro-batch, in
 * order, since the last take. */
int32_t rm_stage_batch(rm_model *m, const uint8_t *images, const int64_t *labels, int64_t n,
                       int32_t c, int32_t h, int32_t w);
int32_t rm_forward_backward_staged(rm_model *m, int64_t lo, int64_t hi, double loss_scale,
                                   double label_smoothing);
int32_t rm_take_metrics(rm_model *m, double *loss_sums, int64_t *corrects, int32_t cap,
                        int32_t *count);
/* Evaluation mode, no gradients. logits (n*num_classes floats) may be NULL. */
int32_t rm_evaluate(rm_model *m, const uint8_t *images, const int64_t *labels, int64_t n,
                    int32_t c, int32_t h, int32_t w, double *loss_sum, int64_t *correct,
                    float *logits);

/* Named tensors: the model's parameters and buffers (torchvision state_dict
 * keys) followed by the optimiser's state ("optimizer." prefix). */
int32_t rm_state_count(rm_model *m);
int32_t rm_state_info(rm_model *m, int32_t i, const char **name, int32_t *dtype,
                      int32_t *ndim, int64_t *shape /* [8] */, int64_t *nbytes);
int32_t rm_state_read(rm_model *m, int32_t i, void *dst, int64_t nbytes);
/* Writes a tensor of another shape (ndim sizes in shape, the state's dtype,
 * nbytes in src)
 * into state i where the model knows how to resize it: a ViT's position
 * embedding made for another image size, resized as torchvision's
 * interpolate_embeddings does. RM_INVALID for any other tensor. */
int32_t rm_state_write_resized(rm_model *m, int32_t i, const void *src, int64_t nbytes, int32_t ndim,
                               const int64_t *shape);
int32_t rm_state_write(rm_model *m, int32_t i, const void *src, int64_t nbytes);

#ifdef __cplusplus
}
#endif
#endif
