/*
 * arch.c — the architecture table: one row per GGUF `general.architecture`
 * kvasir knows, saying what differs between them as data, so model.c loads
 * and forward.c computes from the row instead of testing names:
 *
 *   arch    tensors every layer must have      norms     RoPE                   FFN    chat if no template
 *   llama   (common set)                       pre       adjacent pairs         SiLU   ChatML
 *           + optional rope_freqs.weight (Llama 3: pair i turns by angle / rope_freqs[i])
 *   qwen2   + attn_{q,k,v}.bias                pre       NeoX halves            SiLU   ChatML
 *   qwen3   + attn_{q,k}_norm (per head)       pre + QK  NeoX halves            SiLU   ChatML
 *   gemma3  + attn_{q,k}_norm, post_attention_norm, post_ffw_norm
 *                                              sandwich  NeoX halves, local     GELU   Gemma
 *                                                        layers base 10000
 *
 * The common set: attn_norm, attn_q/k/v/output, ffn_norm, ffn_gate/up/down
 * (+ token_embd, output_norm, optional output); every optional tensor of
 * another row is still read when a file has it, as before this table.
 * Hyper-parameters: every row reads "<arch>.embedding_length", block_count,
 * attention.head_count, feed_forward_length (required) and
 * attention.head_count_kv, context_length, attention.key_length,
 * rope.dimension_count, attention.layer_norm_rms_epsilon, rope.freq_base,
 * rope.scaling.{type,factor,attn_factor,original_context_length} (linear
 * and YaRN, as llama.cpp reads them; model.c) (optional); rows with
 * sliding-window layers also attention.sliding_window (their RoPE is never
 * scaled, as in llama.cpp).
 *
 * llama, qwen2 and gemma3 are held to llama.cpp (tests/engine goldens);
 * qwen3, rope_freqs and rope.scaling, which llama.cpp was not run on here, to a numpy
 * port of llama.cpp's graphs (tests/reference/engine/tiny_ref.py, checked
 * itself on the llama and qwen2 rows) by test_eng_arch.
 *   bert    an encoder, not a decoder: bert.c loads and runs it (eng_embed;
 *           post-LayerNorm, learned absolute positions, erf GELU,
 *           bidirectional attention, mean pooling); held to a numpy port of
 *           the Hugging Face BertModel by test_eng_bert.
 * The chat format is chosen from the template's own markers, not the row
 * (eng_chat_family); the row only supplies the default for files without one.
 */
#include <string.h>

#include "engine/internal.h"

static const eng_arch ARCHS[] = {
    {.id = ARCH_LLAMA, .name = "llama", .rope_neox = 0, .may = ENG_T_ROPE_FREQS, .ffn = ENG_FFN_SILU,
     .chat_default = ENG_CHAT_CHATML},
    {.id = ARCH_QWEN2, .name = "qwen2", .need = ENG_T_QKV_BIAS, .rope_neox = 1, .ffn = ENG_FFN_SILU,
     .chat_default = ENG_CHAT_CHATML},
    {.id = ARCH_QWEN3, .name = "qwen3", .need = ENG_T_QK_NORM, .rope_neox = 1, .ffn = ENG_FFN_SILU,
     .chat_default = ENG_CHAT_CHATML},
    {.id = ARCH_GEMMA3, .name = "gemma3", .need = ENG_T_QK_NORM | ENG_T_POST_NORMS, .rope_neox = 1,
     .swa_period = 6, .rope_base_swa = 10000.f, .swa_rope_unscaled = 1, .emb_scale_sqrt = 1, .scale_q = 1, .ffn = ENG_FFN_GELU,
     .chat_default = ENG_CHAT_GEMMA},
    {.id = ARCH_BERT, .name = "bert", .encoder = 1, .ffn = ENG_FFN_GELU},
};

const eng_arch *eng__arch_find(const char *name) {
  for (size_t i = 0; i < sizeof ARCHS / sizeof *ARCHS; i++)
    if (!strcmp(ARCHS[i].name, name)) return &ARCHS[i];
  return NULL;
}

const char *eng__arch_names(void) { return "llama, qwen2, qwen3, gemma3, bert"; }

int eng_arch_supported(const char *arch) { return arch && eng__arch_find(arch) != NULL; }
const char *eng_arch_list(void) { return eng__arch_names(); }

/* Markers of each family's template text, in the order they are tried
 * (Gemma first, as kvasir always did: a Gemma template that also mentions
 * another family's markers stays Gemma). */
static const struct {
  const char *marker;
  int family;
} MARKERS[] = {
    {"<start_of_turn>", ENG_CHAT_GEMMA},
    {"<|start_header_id|>", ENG_CHAT_LLAMA3},
    {"<|im_start|>", ENG_CHAT_CHATML},
};

int eng_chat_family(const char *chat_template, int fallback) {
  if (!chat_template) return fallback;
  for (size_t i = 0; i < sizeof MARKERS / sizeof *MARKERS; i++)
    if (strstr(chat_template, MARKERS[i].marker)) return MARKERS[i].family;
  return ENG_CHAT_CHATML; /* a template of no known family: ChatML, as before */
}

const char *eng_chat_family_name(int family) {
  switch (family) {
  case ENG_CHAT_GEMMA: return "gemma";
  case ENG_CHAT_LLAMA3: return "llama3";
  default: return "chatml";
  }
}
