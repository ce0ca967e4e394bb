resource "aws_db_instance" "main" {
  engine   = "postgres"
  username = "app"
  password = "G51uy~iEhCEIs-"
}

provider "datadog" {
  api_key = "mK0YcYbfbiXQt51wCLu0TVjjnmYVX4LG"
}
