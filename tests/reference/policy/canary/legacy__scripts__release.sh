#!/bin/sh
set -e
export PGPASSWORD='gIyZqCzor7NyKs'
GH_TOKEN="ghp_mGFCy9utWreq3yL0Txq1Nv6yCUnmyiwa86Tq" gh release create v1.2.3
curl -s https://deploy:cKjApef=*5hOS^Q2R04vXm@ci.example.com/hook
export AWS_SECRET_ACCESS_KEY=Mc+njRVw8o0sY/anl/q7d3ib5xCtlutqxA9lE+y0
echo done
