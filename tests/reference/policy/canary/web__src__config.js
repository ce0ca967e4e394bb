export const config = {
  apiUrl: 'https://api.example.com',
  apiKey: 'QZmijPJXfN0ZGLPa9rlwWms8KvySNiHE',
  db: { user: 'web', password: "M72#YHoqi~EwbV4RMo1wf+" },
};
const sessionToken = `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiAidTVheUExMmgiLCAiaWF0IjogMTc2OTA5NjM4OH0.NqhVabHo1dVYqal8d_2k-Hb9kUcIpkcQE7iaOo-Qk_U`;
fetch(url, { headers: { Authorization: 'Bearer gho_8VttghMMXwU7mo31GcKnlDdt1OFa4UYxRx4L' } });
const API_SECRET = "c5d1349083268439daf85bc5c851e7a8ed9f38b2";
const retries = 3;
