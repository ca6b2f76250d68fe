-- Creates the second database of the compose stack: cloud-app uses the
-- default database "cloud_app", dc-app its own "dc_app".
CREATE DATABASE dc_app;
