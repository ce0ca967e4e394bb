export const config = {
  apiUrl: 'https://api.example.com',
  apiKey: '0G49qkQNLA20wm7JbeioFkDOK9goL6MC',
  db: { user: 'web', password: "EIG=b2^@2Be@-1rP0dOat" },
};
const sessionToken = `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiAicGkwU1Y1bVkiLCAiaWF0IjogMTUyNjIxMzc3Mn0.AP1GRSHT_aPxRuvZlQdBnlLeGZigO1W1HtwU2A1_2I4`;
fetch(url, { headers: { Authorization: 'Bearer ghp_uERDODGf2z9LHfYlTedY2ep4agAyYDhk6Wcf' } });
const API_SECRET = "a469a943921fcf4ca0a67bbd6916b33b8029482f";
const retries = 3;
