resource "aws_db_instance" "main" {
  engine   = "postgres"
  username = "app"
  password = "h^ZQ7@^UQ82Y6Uv7RwHu"
}

provider "datadog" {
  api_key = "Vn1nQvoeFkqKmnNz12v1oJvczGL6hNVK"
}
