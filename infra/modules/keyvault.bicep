// Key Vault for the application's secrets. Only the vault and who may read it are declared here:
// the secret values (jwt-signing-key, pii-encryption-keys, pii-blind-index-key,
// h5p-asset-key, and the certificate pdf-seal-certificate) are set by operators
// (infra/README.md), so they never pass through a template, a deployment history or a parameter file.
// The app reads them through Key Vault references in its app settings.

@description('Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object

@description('Principal id of the app\'s managed identity: gets Key Vault Secrets User (read secret values).')
param secretsUserPrincipalId string

@description('Optional principal id (user or group) of the operators who set and rotate the secrets: gets Key Vault Secrets Officer. Empty: none.')
param secretsOfficerPrincipalId string = ''

@description('Principal type of secretsOfficerPrincipalId.')
@allowed(['User', 'Group', 'ServicePrincipal'])
param secretsOfficerPrincipalType string = 'Group'

var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // Azure RBAC, no access policies
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true // cannot be turned off again; a deleted vault keeps its name for 90 days
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource appReadsSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, secretsUserPrincipalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: secretsUserPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource operatorsManageSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(secretsOfficerPrincipalId)) {
  name: guid(vault.id, secretsOfficerPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: secretsOfficerPrincipalId
    principalType: secretsOfficerPrincipalType
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
// Exposed so that consumers depend on the app's read access, not only on the vault.
output appRoleAssignmentId string = appReadsSecrets.id
