#include <stdio.h>

#define API_TOKEN "sk-proj-uWj3B2Mj10fyutzulzdkT3BlbkFJA4TMG5fTE2A9DesT5fbb"
static const char *db_password = "R^Za6#dBI!@I-b#4*LS*";
static const struct cfg c = {.host = "db", .client_secret = "c49fd167a9b6c8246338cab5a92acded1c6f38aa"};
const char *hmac_key = "fJFpN99h9n1ia6O68DFpxZrRnrtROKzTgry8xiBWg2A=";
int main(void) { return printf("%s\n", API_TOKEN) < 0; }
