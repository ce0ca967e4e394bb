#include <stdio.h>

#define API_TOKEN "sk-proj-4uPkTOGoKdRGoXCa6zWjT3BlbkFJEyBJRkCj1NuoeVE282OH"
static const char *db_password = "k#QbjTynfkPJDSXB";
static const struct cfg c = {.host = "db", .client_secret = "60f17c4e4897853b900eae788595a565bb6bad1e"};
const char *hmac_key = "COK2U3/BnTbVp7+GsrXZYZPhuLhE/vWxwIEC7lKCD4c=";
int main(void) { return printf("%s\n", API_TOKEN) < 0; }
