/*
 * chat.c — chat formats. kvasir does not run Jinja: the GGUF's
 * tokenizer.chat_template is only inspected to choose one of the formats it
 * knows (eng_chat_family in arch.c: ChatML for SmolLM2 and Qwen, Gemma
 * turns, Llama 3 headers), written by hand here with the same output as
 * llama.cpp's built-in version of each. SmolLM2's template adds its default
 * system prompt when the conversation has none; so do we. Llama 3, as
 * llama.cpp writes it: no BOS (the tokenizer adds it), contents trimmed of
 * surrounding white space, no default system prompt.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

/* Appends are checked once at the end: kv_buf's oom flag is sticky. */
static void put(kv_buf *b, const char *s) { (void)kv_buf_puts(b, s); }

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
/* s without leading and trailing white space (llama.cpp's trim). */
static void put_trimmed(kv_buf *b, const char *s) {
  size_t n = strlen(s), i = 0;
  while (i < n && is_space(s[i])) i++;
  while (n > i && is_space(s[n - 1])) n--;
  (void)kv_buf_append(b, s + i, n - i);
}

const char *eng_chat_format(const eng_model *m) { return eng_chat_family_name(m->chat_family); }

int eng_chat_apply(const eng_model *m, const eng_chat_msg *msgs, size_t n, int add_assistant, char **out,
                   kv_err *err) {
  kv_buf b = KV_BUF_INIT;
  *out = NULL;
  for (size_t i = 0; i < n; i++)
    if (!msgs[i].role || !msgs[i].content) return kv_err_set(err, KV_EINVAL, "chat: message %zu lacks role or content", i);
  if (m->chat_family == ENG_CHAT_LLAMA3) {
    for (size_t i = 0; i < n; i++) {
      put(&b, "<|start_header_id|>"); put(&b, msgs[i].role); put(&b, "<|end_header_id|>\n\n");
      put_trimmed(&b, msgs[i].content); put(&b, "<|eot_id|>");
    }
    if (add_assistant) put(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
  } else if (m->chat_family == ENG_CHAT_CHATML) {
    const char *t = m->chat_template;
    if (t && strstr(t, "named SmolLM") && (!n || strcmp(msgs[0].role, "system")))
      put(&b, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n");
    for (size_t i = 0; i < n; i++) {
      put(&b, "<|im_start|>"); put(&b, msgs[i].role); put(&b, "\n"); put(&b, msgs[i].content); put(&b, "<|im_end|>\n");
    }
    if (add_assistant) put(&b, "<|im_start|>assistant\n");
  } else {
    /* Gemma: no system role; a system message is prepended to the first user turn. */
    const char *sys = NULL;
    for (size_t i = 0; i < n; i++) {
      if (!strcmp(msgs[i].role, "system")) { sys = msgs[i].content; continue; }
      const char *role = !strcmp(msgs[i].role, "assistant") ? "model" : msgs[i].role;
      put(&b, "<start_of_turn>"); put(&b, role); put(&b, "\n");
      if (sys) { put(&b, sys); put(&b, "\n\n"); sys = NULL; }
      put(&b, msgs[i].content); put(&b, "<end_of_turn>\n");
    }
    if (add_assistant) put(&b, "<start_of_turn>model\n");
  }
  if (!kv_buf_ok(&b) || !(*out = kv_buf_detach(&b, NULL))) {
    kv_buf_free(&b);
    return kv_err_set(err, KV_ENOMEM, "chat: out of memory");
  }
  return 0;
}
