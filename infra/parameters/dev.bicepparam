// Development environment: small and cheap, same shape as prod.
//   az deployment group create --resource-group rg-aada-lms-dev --parameters infra/parameters/dev.bicepparam
// Values that differ per person or tenant come from the environment (readEnvironmentVariable), so
// nothing here is a placeholder that could be deployed by mistake. See infra/README.md.
using '../main.bicep'

param environmentName = 'dev'

// Flex Consumption. Pool per HTTP instance: floor((429 - 25 - 4 timers x 2) / 40) = 9,
// worst case 9 x 40 + 8 + 25 = 393 of 429 connections.
param maximumInstanceCount = 40
param instanceMemoryMB = 2048
param httpPerInstanceConcurrency = 16

param corsAllowedOrigins = [
  readEnvironmentVariable('AADA_ADMIN_PORTAL_ORIGIN')
  readEnvironmentVariable('AADA_STUDENT_PORTAL_ORIGIN')
]
param studentPortalUrl = readEnvironmentVariable('AADA_STUDENT_PORTAL_ORIGIN')

// PostgreSQL: Burstable B2s (2 vCores, 4 GiB, max_connections 429).
param postgresVersion = '16'
param postgresSkuName = 'Standard_B2s'
param postgresSkuTier = 'Burstable'
param postgresStorageSizeGB = 32
param postgresBackupRetentionDays = 7
param postgresGeoRedundantBackup = false
param postgresHighAvailability = 'Disabled'
// Entra ID only here as well; set true (with postgresAdminPassword) only for a break-glass login.
param postgresPasswordAuthEnabled = false
param postgresEntraAdminObjectId = readEnvironmentVariable('AADA_OPERATORS_GROUP_ID')
param postgresEntraAdminName = readEnvironmentVariable('AADA_OPERATORS_GROUP_NAME')
param postgresEntraAdminType = 'Group'
param dbReservedConnections = 25
// Every operator's and CI runner's public IPv4 that runs migrations or psql from outside Azure,
// comma-separated (infra/README.md, step 1). Each deploy creates (or keeps) one rule per address.
var operatorIps = readEnvironmentVariable('AADA_OPERATOR_IPS', '')
param operatorIpAddresses = empty(operatorIps) ? [] : split(operatorIps, ',')

// The same operators group administers the database and sets the Key Vault secrets.
param keyVaultSecretsOfficerPrincipalId = readEnvironmentVariable('AADA_OPERATORS_GROUP_ID')
param keyVaultSecretsOfficerPrincipalType = 'Group'

param logRetentionDays = 30
param appInsightsLocalAuthDisabled = false
param alertEmailAddresses = []
