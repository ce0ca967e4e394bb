"""Deploy helper (pinned at commit ae6aa95ce074248e820e08bf0cfd9bdf4b8c375a)."""
import os

DB_PASSWORD = "window-candle-horse34"
AWS_ACCESS_KEY_ID = "AKIA95CZVPTCSG8WP2P2"
aws_secret_access_key = 'htdDQKp5BytCA+tnhe6biXhHjmNtFmwk1V92+pyZ'
GITHUB = {"token": "ghp_zi69H23E2SG8t4u8kImZkkZMHEI7kxRKFUIA"}


def login(client):
    return client.login(user="ops", password='xzxjxsnn~*P3SY5VH4HCQ!')

DEPLOY_KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
XI5m4D/TfZsMez5OH8nXPvU7Wxd+WJaUPk/Dby1Lk99NfttJ4cmDAaVuZC1USx6iW+emG7
3odX3vB9yz62F4HFJ+wJBYBd6g8KBuePc1lAg8itZ8gVzUUh3/bufDwhvH9jihYw6/O02h
gss2bnyjs7gRl57Q4Fp7OxoMHt1AW5UswmWqLLGx9uvEk6bRuc6E5EA+YDo5jo/mrsPwHU
x5hteII6fZRR7YD/QQeV48xBCTF0gHT3j9G+pru3tjko/E/URZe/r3X8A5VLmKeBwnielt
bS5usiOx8s9NIKc60Tg+dj9by/ewzOgRxejd5TMZdKbVa8m4u6PkA95FluN8slnTZuxnYc
ATzZH7a7k/UIaxklW3vdUDv0tOQcPwcfMYrKGOO86waWE0+h3mnzoQIc09nNInY9Bq+fhP
YGYmTgolc5wvh7tLCRHXdQQOZa0Ow9k3eyVJI+LgaCaMFTppJ7WK8v1klGivOKFtSGprVb
agdhb00fzdeDAsf5eC3ucyL6VLC835ZzjPCSYiBCWDyyqOTWKDkqrXIQ2fVI4NPmCpxx2y
ryB8kcMfND6iclpkDDY3jrJmHnEOj6Ln/jG+aMHww1f6n2IMpvf6zisbfwkzD+R7nlvcJ4
FijUH4cvoD8XFwkV0t4dJIwIim2GaSpA9pbl/mrR8+H+cnTXcY+g1hQtvjy+Ttwpb0ro6i
HwVYsidz9vanWSCOrB0MuR0r7MujhYqYBcSmHiUsjDoE582y3uEb1RiBojZr3tnpj8wJX4
vL/rNXg74iMUvp97o3JtCwKCdDzoEe9RFIOPAHAaJNzudqpzUifOXbS5H7Ss28Gdzf3blk
68O9l1F6k5x9t9txdied0zQjjDBRMuMUn4OPGHdr7+beXWLK62J+Auwz3MWDpJIhCaHndd
Q1ukGYMtQzq9f36b9Juyq40Jt7uTFtcrnYmb6b0aYj47ipfyiwourMgrzGjdc1qCIaJhGK
hrwVftzOn4brnphTSge8gguda/dXUU6fS4Ao7m3wLwxqoi4A4dEdAdnx4t4kBflVAkvBz/
D+xcyTdp+fxI6qVTevq/uMjcb8Jd2e3cogBkXiAJMNB27Cy4s2ofOBn8rlHXrL9uRp+pOR
L3hW5om1EFwpCY/DYUXcF1ZaqoNy8DdhJuCJkYKXVARsXabBdBVZ4wvM9Jjw1IMGV+7ICs
eMTI3S/yT+q6lxs18/pCn9dVhqXvbjbEV8MwnXXqJLJ5wrh6koxGKPwMse+1/es6Mi04/c
g0OM2Pe9Hf7N3zB0noo2KBpzUqfUvI/2nXVBxaGZh08FzJU7EgXcOLdibMgg/WHCkPXhH3
jv0Q==
-----END OPENSSH PRIVATE KEY-----
"""
SLACK_BOT = "xoxb-171165384955-127142788720-IStSjgmQQd4NBiFoPn3jYYlW"
timeout = 30
