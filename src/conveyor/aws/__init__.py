"""The AWS services' JSON protocols (SigV4-signed) on conveyor serve."""
